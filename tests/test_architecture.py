"""The import direction of the package: every module imports only from layers below its own (or from
its own area), as drawn in docs/architecture.md, and modules import each other in no circle.

Imports are read from the source with :mod:`ast`, including imports inside functions (a lazy import
is still a dependency). ``KNOWN_UPWARD`` and ``KNOWN_CIRCLES`` list the violations that exist today:
the test passes with them and fails on any new one, and on an entry that no longer occurs (so the
lists only shrink). Remove an entry when you fix it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "diffariff"

#: Layers, bottom to top: (layer, areas). A module belongs to the area with the longest matching
#: prefix (``diffariff`` alone is the package's ``__init__``). A module may import from a lower layer or from its own area; two areas of one layer are
#: independent of each other.
LAYERS = (
    ("errors", ("diffariff", "diffariff.errors")),
    ("utilities", ("diffariff.fsutil", "diffariff.torchutil")),
    ("checkpoint", ("diffariff.checkpoint",)),
    ("audio", ("diffariff.audio",)),
    ("audio spool", ("diffariff.audio_spool",)),
    ("audio input", ("diffariff.audio_input",)),
    ("request", ("diffariff.request",)),
    ("nets", ("diffariff.nets",)),
    ("models", ("diffariff.codec", "diffariff.clap")),
    ("data", ("diffariff.data",)),
    ("analysis", ("diffariff.timing",)),
    ("diffusion", ("diffariff.diffusion",)),
    ("priors", ("diffariff.priors",)),
    ("bundle", ("diffariff.bundle",)),
    ("long-form output", ("diffariff.longform",)),
    ("pipeline", ("diffariff.pipeline", "diffariff.testing")),
    ("eval", ("diffariff.eval",)),
    ("train", ("diffariff.train",)),
    ("studio", ("diffariff.studio",)),
    ("interface", ("diffariff.commands", "diffariff.cli")),
)

#: Imports that point up the layers today: (importing module, imported module).
KNOWN_UPWARD: set[tuple[str, str]] = set()

#: Module circles today, each as the sorted tuple of its modules.
KNOWN_CIRCLES: set[tuple[str, ...]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` (at ``path``) imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in modules]
            targets = submodules or [source]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a function-less path: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _area(module: str) -> tuple[int, str]:
    best = (-1, "")
    for level, (_, areas) in enumerate(LAYERS):
        for area in areas:
            inside = module == area or (area != "diffariff" and module.startswith(area + "."))
            if inside and len(area) > len(best[1]):
                best = (level, area)
    assert best[1], f"{module} is in no layer: add its area to LAYERS (and to docs/architecture.md)"
    return best


def _upward(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    bad = set()
    for module, targets in graph.items():
        level, area = _area(module)
        for target in targets:
            t_level, t_area = _area(target)
            if t_area != area and t_level >= level:
                bad.add((module, target))
    return bad


def _circles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.add(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    for module in _modules():
        _area(module)


def test_no_new_upward_import():
    upward = _upward(_graph())
    new = sorted(upward - KNOWN_UPWARD)
    assert not new, "imports pointing up the layers (docs/architecture.md):\n" + "\n".join(f"{a} -> {b}" for a, b in new)


def test_known_violations_are_current():
    """An entry of the allow-lists that no longer occurs must leave them, so that it cannot come back."""
    graph = _graph()
    fixed = sorted(KNOWN_UPWARD - _upward(graph))
    assert not fixed, f"no longer imported, remove from KNOWN_UPWARD: {fixed}"
    gone = sorted(KNOWN_CIRCLES - _circles(graph))
    assert not gone, f"circle gone, remove from KNOWN_CIRCLES: {gone}"


def test_no_new_circle():
    circles = _circles(_graph())
    new = sorted(circles - KNOWN_CIRCLES)
    assert not new, f"modules importing each other in a circle: {new}"


def test_the_check_sees_an_upward_import():
    graph = {"diffariff.audio": {"diffariff.pipeline"}, "diffariff.pipeline": {"diffariff.audio"}}
    assert _upward(graph) == {("diffariff.audio", "diffariff.pipeline")}
    assert _circles(graph) == {("diffariff.audio", "diffariff.pipeline")}
