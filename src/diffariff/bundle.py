"""Model bundles: one folder holding everything the :class:`~diffariff.pipeline.Accompanist` needs.

Layout (``manifest.json`` plus the files it names, all relative to the folder)::

    {"format": "diffariff-bundle", "version": 1,
     "codec": "codec.safetensors",                       # kind "codec"
     "clap": "clap.safetensors",                         # kind "clap"
     "diffusion": {"edm": "diffusion_edm.safetensors",   # kind "latent-diffusion", either mode
                   "consistency": "diffusion_ct.safetensors"},   # may be missing (not both)
     "bridge": "bridge.safetensors" | null,              # optional text->audio CLAP bridge
     "prior": "prior.safetensors" | null,                # optional context prior (may be absent)
     "pitch_critic": "pitch_critic.safetensors" | null,  # optional fast pitch readout of the codec's latents
     "example": {"context": "example_context.flac", ...} | null,
     "notes": "free text"}

:func:`open_bundle` validates a bundle without loading any weights: the manifest's shape, that every
named file exists inside the folder and is a diffariff checkpoint of the right kind, and that every
diffusion model was trained on latents of *this* codec and embeddings of *this* CLAP (identity
recorded in the diffusion model's config, compared with :func:`checkpoint_identity` of the files).
Every failure is a :class:`~diffariff.errors.CheckpointError` with a one-line message.

:func:`save_bundle` assembles a bundle atomically: everything is written to a temporary sibling folder
that is renamed into place only when complete.

The default bundle ships inside the package at ``diffariff/assets/default/``; ``"default"`` names it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .checkpoint import file_sha256, read_checkpoint_metadata
from .errors import CheckpointError
from .fsutil import current_umask, write_json_atomic

FORMAT = "diffariff-bundle"
VERSION = 1
MANIFEST = "manifest.json"
#: Diffusion sampling modes a bundle may hold, in order of preference for the default sampler.
MODES = ("edm", "consistency")
#: Checkpoint kinds of the bundle's parts.
KINDS = {"codec": "codec", "clap": "clap", "diffusion": "latent-diffusion"}
#: Checkpoint kinds a bundle's codec may have: the first codec, or the synth codec (codec v2).
CODEC_KINDS = ("codec", "synth_codec")
#: Where the default bundle lives (inside the installed package).
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "assets" / "default"
#: Shipped codecs by name (``diffariff reconstruct --codec NAME``): ``v2``, the synth codec, is the default
#: bundle's codec.
SHIPPED_CODECS = {"v2": DEFAULT_BUNDLE / "codec.safetensors"}


def codec_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped codec's name (:data:`SHIPPED_CODECS`) -> its file; anything else -> that path."""
    return SHIPPED_CODECS.get(str(name_or_path), Path(name_or_path))


#: Standard file names used by :func:`save_bundle`.
FILE_NAMES = {
    "codec": "codec.safetensors",
    "clap": "clap.safetensors",
    "edm": "diffusion_edm.safetensors",
    "consistency": "diffusion_consistency.safetensors",
    "bridge": "bridge.safetensors",
    "prior": "prior.safetensors",
    "pitch_critic": "pitch_critic.safetensors",
}


@dataclasses.dataclass
class Bundle:
    """A validated bundle: absolute paths of its parts and its manifest notes.

    ``diffusion`` maps each available mode ("edm", "consistency") to its checkpoint path;
    ``example`` maps example names (e.g. "context") to absolute file paths.
    """

    root: Path
    codec: Path
    clap: Path
    diffusion: dict[str, Path]
    bridge: Path | None
    example: dict[str, Path]
    notes: str
    manifest: dict
    prior: Path | None = None
    pitch_critic: Path | None = None

    @property
    def modes(self) -> tuple[str, ...]:
        """Available diffusion modes, preferred first."""
        return tuple(m for m in MODES if m in self.diffusion)


def resolve_bundle_dir(path_or_name: str | os.PathLike) -> Path:
    """``"default"`` -> the package's default bundle folder; anything else -> that folder.

    Raises CheckpointError when the folder does not exist; for the default bundle the message says
    how to get one.
    """
    if str(path_or_name) == "default":
        root = DEFAULT_BUNDLE
        if not (root / MANIFEST).is_file():
            raise CheckpointError(
                f"the default model bundle is not installed ({root} has no {MANIFEST}); train the models "
                "and assemble one with `diffariff bundle create` (see README), or pass --bundle PATH"
            )
        return root
    root = Path(path_or_name).expanduser()
    if not root.exists():
        raise CheckpointError(f"model bundle not found: {root}")
    if not root.is_dir():
        raise CheckpointError(f"{root}: a model bundle is a folder with a {MANIFEST}, not a file")
    return root.resolve()


def read_manifest(root: Path) -> dict:
    """The parsed and shape-checked manifest of the bundle at ``root``."""
    path = root / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{root}: not a model bundle (no {MANIFEST})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a diffariff bundle manifest (format must be '{FORMAT}')")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: bundle version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{path}: bundle version {version} is newer than this diffariff reads ({VERSION})")
    for key in ("codec", "clap"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise CheckpointError(f"{path}: '{key}' must name a file")
    diff = data.get("diffusion")
    if not isinstance(diff, dict) or not diff:
        raise CheckpointError(f"{path}: 'diffusion' must map 'edm' and/or 'consistency' to files")
    unknown = sorted(set(diff) - set(MODES))
    if unknown:
        raise CheckpointError(f"{path}: unknown diffusion mode(s) {', '.join(unknown)} (use edm, consistency)")
    if any(not isinstance(v, str) or not v for v in diff.values()):
        raise CheckpointError(f"{path}: every 'diffusion' entry must name a file")
    for key in ("bridge", "prior", "pitch_critic"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise CheckpointError(f"{path}: '{key}' must name a file or be null")
    example = data.get("example")
    if example is not None and (not isinstance(example, dict) or not all(isinstance(v, str) for v in example.values())):
        raise CheckpointError(f"{path}: 'example' must map names to files or be null")
    if not isinstance(data.get("notes", ""), str):
        raise CheckpointError(f"{path}: 'notes' must be a string")
    return data


def _member(root: Path, name: str, what: str) -> Path:
    """``root / name`` checked to exist and to stay inside ``root``."""
    p = (root / name).resolve()
    if root.resolve() not in p.parents:
        raise CheckpointError(f"{root}: {what} file '{name}' points outside the bundle")
    if not p.is_file():
        raise CheckpointError(f"{root}: {what} file '{name}' is missing")
    return p


def _kind(path: Path, expected: str | tuple[str, ...], what: str) -> dict:
    meta = read_checkpoint_metadata(path)
    kinds = (expected,) if isinstance(expected, str) else expected
    if meta.get("kind") not in kinds:
        raise CheckpointError(f"{path}: the bundle's {what} holds a '{meta.get('kind')}' model, expected "
                              f"{' or '.join(repr(k) for k in kinds)}")
    return meta


def _recorded_ids(meta: dict) -> dict[str, str]:
    """``{"codec": id, "clap": id}`` recorded in a diffusion checkpoint's config (empty ids skipped)."""
    try:
        cfg = json.loads(meta.get("config", "{}"))
    except json.JSONDecodeError:
        raise CheckpointError("diffusion checkpoint has an unreadable config") from None
    return {part: str(cfg.get(f"{part}_id") or "") for part in ("codec", "clap") if cfg.get(f"{part}_id")}


def check_identity(diffusion_path: Path, recorded: dict[str, str], part: str, part_path: Path,
                   cache: dict[Path, str]) -> None:
    """Raise CheckpointError when the diffusion model at ``diffusion_path`` was trained with a ``part``
    ("codec" / "clap") whose identity (:func:`diffariff.diffusion.model.model_identity`: kind, config
    and fp16-rounded weights) differs from the bundle's file ``part_path``. A model that recorded no
    identity is accepted (older or hand-made checkpoints)."""
    want = recorded.get(part)
    if not want:
        return
    if part_path not in cache:
        cache[part_path] = checkpoint_identity(part_path)
    have = cache[part_path]
    if have != want:
        raise CheckpointError(
            f"{diffusion_path.name} was trained with {part} {want}, but the bundle's {part_path.name} is {have}"
        )


def checkpoint_identity(path: str | os.PathLike) -> str:
    """The identity a diffusion model records for its codec / CLAP:
    :func:`diffariff.diffusion.model.model_identity` ("<kind>:<16 hex>", kind + config + fp16 weights)."""
    from .diffusion.model import model_identity

    return model_identity(path)


def _check_bridge(bridge: Path, clap: Path, condition: str = "text") -> None:
    """The bridge (``condition="text"``) or context prior (``"context"``) is a CLAP-bridge checkpoint
    with that condition, trained on this bundle's CLAP (when it records one)."""
    from .priors.bridge import KIND as BRIDGE_KIND

    what = "bridge" if condition == "text" else "context prior"
    meta = _kind(bridge, BRIDGE_KIND, what)
    config = json.loads(meta.get("config", "{}"))
    have = config.get("condition", "text")
    if have != condition:
        raise CheckpointError(f"{bridge.name}: the bundle's {what} must be conditioned on '{condition}', "
                              f"this one is conditioned on '{have}'")
    _check_clap_hash(bridge, config, clap)


def _check_clap_hash(part: Path, config: dict, clap: Path) -> None:
    """CheckpointError unless ``part``'s ``config`` records no CLAP hash or the hash of ``clap``."""

    want = config.get("clap_sha256", "")
    if want and file_sha256(clap) != want:
        raise CheckpointError(f"{part.name} was made with a different CLAP than the bundle's {clap.name}")


def _check_prior(prior: Path, clap: Path) -> None:
    """The context prior is a CLAP bridge conditioned on the context or a neighbour prior
    (:mod:`diffariff.priors.neighbour_prior`), embedded with this bundle's CLAP (when it records one)."""
    from .priors.neighbour_prior import KIND as NEIGHBOUR_KIND

    meta = read_checkpoint_metadata(prior)
    if meta.get("kind") != NEIGHBOUR_KIND:
        _check_bridge(prior, clap, "context")
        return
    _check_clap_hash(prior, json.loads(meta.get("config", "{}")), clap)


def open_bundle(path_or_name: str | os.PathLike = "default") -> Bundle:
    """Validate the bundle at ``path_or_name`` (a folder or ``"default"``) and return its parts.

    Reads only manifest and checkpoint headers (no weights). Raises CheckpointError.
    """
    root = resolve_bundle_dir(path_or_name)
    data = read_manifest(root)
    codec = _member(root, data["codec"], "codec")
    clap = _member(root, data["clap"], "clap")
    _kind(codec, CODEC_KINDS, "codec")
    _kind(clap, KINDS["clap"], "clap")
    diffusion: dict[str, Path] = {}
    ids: dict[Path, str] = {}
    for mode, name in data["diffusion"].items():
        p = _member(root, name, f"{mode} diffusion")
        meta = _kind(p, KINDS["diffusion"], f"{mode} diffusion model")
        recorded = _recorded_ids(meta)
        check_identity(p, recorded, "codec", codec, ids)
        check_identity(p, recorded, "clap", clap, ids)
        cfg_mode = json.loads(meta.get("config", "{}")).get("mode", "edm")
        if cfg_mode != mode:
            raise CheckpointError(f"{p}: the manifest lists it as the {mode} model but it is a {cfg_mode} model")
        diffusion[mode] = p
    bridge = None
    if data.get("bridge"):
        bridge = _member(root, data["bridge"], "bridge")
        _check_bridge(bridge, clap)
    prior = None
    if data.get("prior"):
        prior = _member(root, data["prior"], "context prior")
        _check_prior(prior, clap)
    critic = None
    if data.get("pitch_critic"):
        critic = _member(root, data["pitch_critic"], "pitch critic")
        _check_pitch_critic(critic, codec, ids)
    example = {k: _member(root, v, f"example '{k}'") for k, v in (data.get("example") or {}).items()}
    return Bundle(root=root, codec=codec, clap=clap, diffusion=diffusion, bridge=bridge, example=example,
                  notes=data.get("notes", ""), manifest=data, prior=prior, pitch_critic=critic)


def _check_pitch_critic(critic: Path, codec: Path, ids: dict[Path, str]) -> None:
    """The pitch critic (:mod:`diffariff.codec.pitch_critic`) was fitted to this bundle's codec (when it
    records which)."""
    from .codec.pitch_critic import KIND as CRITIC_KIND

    meta = _kind(critic, CRITIC_KIND, "pitch critic")
    want = json.loads(meta.get("config", "{}")).get("codec_id", "")
    if want:
        if codec not in ids:
            ids[codec] = checkpoint_identity(codec)
        if ids[codec] != want:
            raise CheckpointError(f"{critic.name} was fitted to codec {want}, but the bundle's {codec.name} "
                                  f"is {ids[codec]}")


def _place(part: Any, dest: Path) -> None:
    """Write ``part`` (a model with ``.save(path)`` or an existing file path) to ``dest``."""
    if isinstance(part, str | os.PathLike):
        src = Path(part)
        if not src.is_file():
            raise CheckpointError(f"cannot add {src} to the bundle: no such file")
        shutil.copyfile(src, dest)
    elif hasattr(part, "save"):
        part.save(dest)
    else:
        raise CheckpointError(f"cannot add a {type(part).__name__} to a bundle (need a model with .save or a path)")


def save_bundle(
    out_dir: str | os.PathLike,
    *,
    codec: Any,
    clap: Any,
    diffusion: dict[str, Any],
    bridge: Any = None,
    prior: Any = None,
    pitch_critic: Any = None,
    example: dict[str, str | os.PathLike] | None = None,
    notes: str = "",
    overwrite: bool = False,
) -> Bundle:
    """Assemble a bundle folder atomically and return it validated (:func:`open_bundle`).

    Parts are models with a ``save(path)`` method or paths of existing checkpoints (copied);
    ``bridge`` / ``prior`` / ``pitch_critic`` (optional): the text bridge, the context prior and the
    pitch critic; ``diffusion`` maps "edm" and/or "consistency" to one each; ``example`` maps names (e.g.
    "context") to audio files that are copied in. The folder appears only when complete; an existing
    ``out_dir`` is replaced only with ``overwrite=True``.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise CheckpointError(f"{out} already exists (pass overwrite=True to replace it)")
    if not diffusion or set(diffusion) - set(MODES):
        raise CheckpointError(f"diffusion must map some of {', '.join(MODES)} to models, got {sorted(diffusion)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; a bundle is an ordinary folder
    try:
        manifest: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        _place(codec, tmp / FILE_NAMES["codec"])
        manifest["codec"] = FILE_NAMES["codec"]
        _place(clap, tmp / FILE_NAMES["clap"])
        manifest["clap"] = FILE_NAMES["clap"]
        manifest["diffusion"] = {}
        for mode in MODES:
            if mode in diffusion:
                _place(diffusion[mode], tmp / FILE_NAMES[mode])
                manifest["diffusion"][mode] = FILE_NAMES[mode]
        manifest["bridge"] = None
        if bridge is not None:
            _place(bridge, tmp / FILE_NAMES["bridge"])
            manifest["bridge"] = FILE_NAMES["bridge"]
        if prior is not None:
            _place(prior, tmp / FILE_NAMES["prior"])
            manifest["prior"] = FILE_NAMES["prior"]
        if pitch_critic is not None:
            _place(pitch_critic, tmp / FILE_NAMES["pitch_critic"])
            manifest["pitch_critic"] = FILE_NAMES["pitch_critic"]
        manifest["example"] = None
        if example:
            manifest["example"] = {}
            for name, src in example.items():
                target = f"example_{name}{Path(src).suffix.lower()}"
                _place(src, tmp / target)
                manifest["example"][name] = target
        manifest["notes"] = notes
        write_json_atomic(tmp / MANIFEST, manifest)
        open_bundle(tmp)  # validate before it becomes visible
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_bundle(out)
