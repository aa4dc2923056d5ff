"""Safe file writes.

* :func:`atomic_path`: a failed or interrupted write never leaves a partial file behind.
* :func:`check_output_path` / :func:`check_output_paths` / :func:`check_output_dir`: before any slow
  work, refuse an output that would replace one of the call's inputs (same resolved path, a symlink or
  a hard link to it) unless overwriting is asked for explicitly, an output that is a folder, and an
  output whose folder cannot be created or written.

Every refusal and every failure to create the file is an :class:`~diffariff.errors.OutputPathError`
(an InputError: one line, exit code 2 on the command line).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputPathError

#: Audio file types diffariff writes.
AUDIO_SUFFIXES = (".wav", ".flac")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary file lives in the same directory (so the rename is atomic on POSIX) and keeps the
    final suffix (so libraries that infer the format from the name still work). If the body raises,
    the temporary file is removed and ``path`` is left untouched. When the folder or the temporary
    file cannot be created, or the final rename fails, the error is an OutputPathError.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent)
    except OSError as exc:
        _check_creatable(_absolute(final.parent), final)  # the clearer reason, when it is one
        raise OutputPathError(f"cannot write {final}: {os_reason(exc)}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files; give the result the usual umask-based mode
            os.chmod(tmp, 0o666 & ~current_umask())
        try:
            os.replace(tmp, final)
        except OSError as exc:
            raise OutputPathError(f"cannot write {final}: {os_reason(exc)}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def os_reason(exc: OSError) -> str:
    """The one-line reason of an OSError (``Permission denied``, ``Not a directory``, ...)."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return " ".join(text.split())


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file: equal resolved paths (symlinks followed), or
    :func:`os.path.samefile` (hard links, bind mounts, case-insensitive file systems)."""
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
    except (OSError, RuntimeError):  # a symlink loop: fall through to samefile
        pass
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (or is not a valid path)
        return False


def _absolute(folder: str | os.PathLike) -> Path:
    """``folder`` made absolute with symlinks resolved where it exists (``..`` after a symlinked folder
    means that folder's real parent, as for the file system)."""
    try:
        return Path(folder).resolve()
    except (OSError, RuntimeError):  # a symlink loop: the lexical form
        return Path(os.path.abspath(folder))


def _file_inputs(inputs: Iterable[object]) -> list[Path]:
    """The file paths among ``inputs`` (None, arrays, tensors and embeddings are skipped)."""
    return [Path(x) for x in inputs if isinstance(x, str | os.PathLike)]


def check_output_dir(folder: str | os.PathLike) -> Path:
    """OutputPathError unless ``folder`` is a writable folder or can be created: its nearest existing
    ancestor must be a folder this process may write into. Creates nothing; returns the absolute path."""
    target = _absolute(folder)
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"{folder} is a file, not a folder")
    _check_creatable(target, folder)
    return target


def _check_creatable(folder: Path, shown: object) -> None:
    """OutputPathError ("cannot write <shown>: ...") unless the absolute ``folder`` exists or can be
    created and is writable."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputPathError(f"cannot write {shown}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {shown}: no permission to write in {probe}")


def check_output_path(out: str | os.PathLike, inputs: Iterable[object] = (), overwrite: bool = False, *,
                      suffixes: tuple[str, ...] | None = AUDIO_SUFFIXES, flag: str = "--overwrite") -> Path:
    """Check that a file can be written at ``out`` before any slow work; returns ``Path(out)``.

    OutputPathError (one line) when: ``out`` does not end in one of ``suffixes`` (None: any name);
    ``out`` is a folder; ``out`` is the same file as one of ``inputs`` (same resolved path, or a symlink
    or hard link to it; inputs that are not paths are ignored) and ``overwrite`` is False; or the
    folder of ``out`` cannot be created or written (:func:`check_output_dir`). ``flag`` is the option
    the message names to allow overwriting (``"overwrite=True"`` for the Python API).
    """
    p = Path(out)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise OutputPathError(f"{p}: the output must be a {' or '.join(suffixes)} file")
    if p.is_dir():
        raise OutputPathError(f"{p} is a folder; give an output file name")
    if not overwrite:
        for src in _file_inputs(inputs):
            if same_file(p, src):
                link = "" if str(p) == str(src) else f" (the same file as {src})"
                raise OutputPathError(f"{p} is one of the inputs{link}; refusing to write over it "
                                      f"(use {flag} to replace it)")
    _check_creatable(_absolute(p.parent), p)
    return p


def check_output_paths(outs: Iterable[str | os.PathLike], inputs: Iterable[object] = (), overwrite: bool = False,
                       **kw) -> list[Path]:
    """:func:`check_output_path` for each of ``outs``, and OutputPathError when two of them are the same
    file (one output would replace another; ``overwrite`` does not allow that)."""
    inputs = list(inputs)
    checked: list[Path] = []
    for out in outs:
        p = check_output_path(out, inputs, overwrite, **kw)
        for earlier in checked:
            if same_file(p, earlier):
                raise OutputPathError(f"{p} and {earlier} are the same file; give each output its own name")
        checked.append(p)
    return checked


def current_umask() -> int:
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
