"""Checkpoints: one ``.safetensors`` file holding the weights and, in its metadata, the model kind,
the format version and the config as JSON. Loading never unpickles anything.

Configs are dataclasses; :func:`config_to_dict` / :func:`config_from_dict` convert them (nested
dataclasses included) so that a checkpoint rebuilds its model without outside information.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import CheckpointError, ConfigError
from .fsutil import atomic_path

FORMAT_NAME = "diffariff-checkpoint"
FORMAT_VERSION = 1

T = TypeVar("T")


def config_to_dict(config: Any) -> dict:
    """A dataclass config (possibly nested) as a plain JSON-able dict."""
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return dict(config)
    raise ConfigError(f"config must be a dataclass or a dict, got {type(config).__name__}")


def _coerce(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return config_from_dict(tp, value)
    if origin in (tuple,) and isinstance(value, list):
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return config_from_dict(arg, value)
        if isinstance(value, list):
            return tuple(value) if any(typing.get_origin(a) is tuple for a in typing.get_args(tp)) else value
    return value


def config_from_dict(cls: type[T], data: dict) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error (typos must not pass)."""
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) for {cls.__name__}: {', '.join(unknown)}")
    kwargs = {k: _coerce(hints.get(k, Any), v) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from None


def load_config_file(cls: type[T], path: str | os.PathLike) -> T:
    """Read a JSON config file into dataclass ``cls``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return config_from_dict(cls, data)


def save_checkpoint(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    *,
    kind: str,
    config: Any,
    extra: dict | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``tensors`` to ``path`` (atomically) with kind, format version, config and ``extra``
    (any JSON-able dict: training step, measured statistics, ...) in the metadata.

    ``dtype`` (e.g. ``torch.float16``) casts floating-point tensors for small exported weights.
    """
    out = {}
    for name, t in tensors.items():
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[name] = t.contiguous()
    meta = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "kind": kind,
        "config": json.dumps(config_to_dict(config)),
        "extra": json.dumps(extra or {}),
    }
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata=meta)
    return Path(path)


@dataclasses.dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns: weights (float32 unless ``keep_dtype``), kind, config
    dict and the extra metadata dict."""

    tensors: dict[str, torch.Tensor]
    kind: str
    config: dict
    extra: dict


def read_checkpoint_metadata(path: str | os.PathLike) -> dict:
    """Only the metadata of a checkpoint (cheap: no tensor is read)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise CheckpointError(f"{p}: not a safetensors checkpoint ({str(exc).splitlines()[0]})") from None
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{p}: not a diffariff checkpoint (metadata has no format '{FORMAT_NAME}')")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise CheckpointError(
            f"{p}: checkpoint format {meta.get('format_version')} is newer than this diffariff "
            f"understands ({FORMAT_VERSION}); upgrade diffariff"
        )
    return meta


def load_checkpoint(
    path: str | os.PathLike, *, kind: str | None = None, keep_dtype: bool = False
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`; check its ``kind`` when given."""
    p = Path(path)
    meta = read_checkpoint_metadata(p)
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{p}: holds a '{meta.get('kind')}' model, expected '{kind}'")
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(p), framework="pt") as f:
            for name in f.keys():
                t = f.get_tensor(name)
                if not keep_dtype and t.is_floating_point():
                    t = t.float()
                tensors[name] = t
        config = json.loads(meta.get("config", "{}"))
        extra = json.loads(meta.get("extra", "{}"))
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{p}: corrupt checkpoint ({str(exc).splitlines()[0]})") from None
    return Checkpoint(tensors=tensors, kind=meta["kind"], config=config, extra=extra)


def load_state_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Load ``tensors`` into ``module`` strictly, turning shape/key mismatches into CheckpointError."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the model built from its config ({first})") from None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes: the identity of a checkpoint (the CLAP a bridge, a prior or an
    embedding cache was made with; the codec of an evaluation). Raises CheckpointError when the file
    is missing or cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    h = hashlib.sha256()
    try:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise CheckpointError(f"cannot read {p}: {exc.strerror or exc}") from None
    return h.hexdigest()
