"""Transposed copies of a latent cache: the same pairs with the target moved to another key.

Why: a latent model trained on songs as they were written can lower its loss through the context's
rhythm and timbre without ever reading the context's pitch content (docs/experiments.md: the key fit of
its stems is the same with the song's own context and with another song's). A copy of each pair whose
target plays ``k`` semitones higher, while the context chroma says so too (rolled by ``k``) and the context
latents stay as they were, leaves one cue for the target's key: the chroma stream. Trained on both
copies, the model has to take its key and chords from the chroma; at generation the chroma is computed
from the context itself, so latents and chroma agree again.

How: the synth codec transposes exactly in its controls (:mod:`diffariff.codec.transpose`): each target's
latents are decoded with the oscillator rows shifted by ``k`` semitones (noise bands, i.e. transients,
stay), and the audio is encoded again. The shift per row is drawn from :data:`SHIFTS` by a generator
seeded with (``seed``, shard). Everything else of a row (context latents, CLAP embeddings, metadata) is
copied (so are the targets of :data:`UNPITCHED_ROLES`); each metadata item gains ``"transpose": k``; the manifest gains ``transposed_from`` and the
recipe ``target_transpose``. Re-running skips complete shards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError, InputError
from ..fsutil import write_json_atomic
from .latents import (
    CHROMA_KEY,
    MANIFEST,
    _read_shard,
    _statistics,
    _write_shard,
    has_context_chroma,
    read_manifest,
    shard_is_complete,
    shard_path,
)

#: Transpositions drawn per row, in semitones (every pitch-class rotation but none).
SHIFTS = tuple(k for k in range(-5, 7) if k != 0)
#: Target roles copied as they are (nothing to transpose; their chroma is still rolled, which tells the
#: model that these targets do not follow it).
UNPITCHED_ROLES = ("drums", "percussion")


def transposed_target(codec, target: torch.Tensor, semitones: list[int], seed: int = 0) -> torch.Tensor:
    """Target latents ``[B, D, T]`` -> the latents of the same stems played ``semitones[b]`` higher
    ``[B, D, T]`` float32: decode with the oscillator rows shifted (:meth:`SynthCodec.decode`), encode again."""
    audio = codec.decode(target.float(), seed=int(seed), semitones=[int(k) for k in semitones])  # [B, 1, N]
    z = codec.encode(audio).float()
    frames = target.shape[-1]
    if z.shape[-1] < frames:
        z = torch.nn.functional.pad(z, (0, frames - z.shape[-1]))
    return z[..., :frames]


def transpose_fit(codec, source: torch.Tensor, moved: torch.Tensor, semitones: list[int]) -> list[float]:
    """How well re-encoding kept a transposition: per item, the correlation of the pitch-class profile
    (:meth:`SynthCodec.pitch_class_profile`) of the ``moved`` latents ``[B, D, T]`` with the ``source``
    latents' profile rolled by ``semitones[b]`` (1: the notes moved exactly; 0 for a silent item)."""
    rolled = rolled_chroma(codec.pitch_class_profile(source.float())[..., None], semitones)[..., 0]
    got = codec.pitch_class_profile(moved.float())
    a, b = rolled - rolled.mean(-1, keepdim=True), got - got.mean(-1, keepdim=True)
    den = (a.pow(2).sum(-1) * b.pow(2).sum(-1)).sqrt()
    return [float(x) for x in torch.where(den > 1e-12, (a * b).sum(-1) / den.clamp_min(1e-12), torch.zeros_like(den))]


def rolled_chroma(chroma: torch.Tensor, semitones: list[int]) -> torch.Tensor:
    """Context chroma ``[B, 12, T]`` (bin 0 = C) -> the chroma of the same context ``semitones[b]`` higher:
    class c moves to c + k (mod 12)."""
    return torch.stack([torch.roll(c, int(k), dims=0) for c, k in zip(chroma, semitones)])


def transpose_cache(codec, source: str | os.PathLike, out: str | os.PathLike, *, seed: int = 0,
                    batch_size: int = 8, codec_id: str = "", worker: tuple[int, int] = (0, 1),
                    max_shards: int | None = None, on_shard: Callable[[int], None] | None = None) -> dict | None:
    """Write the transposed copy (module doc) of the latent cache at ``source`` into ``out``.

    ``codec`` must be the synth codec the cache was built with (``codec_id``, when given, is checked against
    the manifest); ``max_shards``: copy only the first shards (a smaller cache). ``worker`` (i, n) builds
    only shards k with k % n == i; the manifest is written by the call that finds every shard complete
    (returned; None otherwise)."""
    source, out = Path(source), Path(out)
    manifest = read_manifest(source)
    if not manifest.get("complete", False):
        raise DatasetError(f"{source}: the cache is incomplete; finish `diffariff latents build` first")
    if codec_id and manifest.get("codec_id") and manifest["codec_id"] != codec_id:
        raise InputError(f"the cache was built with {manifest['codec_id']}, the codec given is {codec_id}")
    if not getattr(codec, "can_transpose", False):
        raise InputError("only the oscillator-bank synth codec can transpose a cache's targets")
    if not has_context_chroma(manifest):
        raise InputError(f"{source}: the cache stores no context chroma, so a transposed copy would give the "
                         "model no cue for the new key")
    if max_shards is not None and int(max_shards) < 1:
        raise InputError(f"--shards must be >= 1, got {max_shards}")
    if out.resolve() == source.resolve():
        raise InputError("--out must be another folder than the cache it copies")
    wid, nworkers = worker
    out.mkdir(parents=True, exist_ok=True)
    shards = int(manifest["shards"]) if max_shards is None else min(int(max_shards), int(manifest["shards"]))
    for k in range(shards):
        if k % nworkers != wid:
            continue
        src_rows = _shard_rows(source, k)
        if shard_is_complete(out, k, src_rows, chroma=True):
            continue
        _transpose_shard(codec, source, out, k, seed, batch_size)
        if on_shard is not None:
            on_shard(k)
    if not all(shard_is_complete(out, k, _shard_rows(source, k), chroma=True) for k in range(shards)):
        return None
    new = dict(manifest)
    new["transposed_from"] = str(source)
    new["shards"] = shards
    new["pairs"] = new["target_pairs"] = sum(len(_shard_rows(out, k)) for k in range(shards))
    new["recipe"] = dict(manifest["recipe"], pairs=new["pairs"],
                         target_transpose={"shifts": list(SHIFTS), "seed": int(seed)})
    new["stats"] = _statistics((_read_shard(out, k) for k in range(shards)), str(out))
    fits = [item["transpose_fit"] for k in range(shards) for item in _shard_items(out, k) if "transpose_fit" in item]
    new["transpose_fit"] = {"mean": float(np.mean(fits)) if fits else None,
                            "median": float(np.median(fits)) if fits else None, "pitched_rows": len(fits)}
    write_json_atomic(out / MANIFEST, new)
    return new


def _shard_meta(root: Path, k: int) -> dict:
    side = shard_path(root, k, ".json")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        int(meta["first"]), int(meta["count"]), meta["items"]
        return meta
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{side}: unreadable shard index ({exc})") from None


def _shard_rows(root: Path, k: int) -> range:
    meta = _shard_meta(root, k)
    return range(int(meta["first"]), int(meta["first"]) + int(meta["count"]))


def _shard_items(root: Path, k: int) -> list[dict]:
    return list(_shard_meta(root, k)["items"])


def _transpose_shard(codec, source: Path, out: Path, k: int, seed: int, batch_size: int) -> None:
    """Shard ``k`` of ``source`` with each row's target transposed, written to ``out``."""
    tensors = _read_shard(source, k)
    meta = _shard_meta(source, k)
    rows = int(tensors["target"].shape[0])
    rng = np.random.default_rng([int(seed), int(k)])
    shifts = [int(s) for s in rng.choice(SHIFTS, size=rows)]
    target = tensors["target"].clone()
    pitched = [i for i, item in enumerate(meta["items"]) if item.get("role") not in UNPITCHED_ROLES]
    fits: dict[int, float] = {}
    for a in range(0, len(pitched), int(batch_size)):
        rows_a = pitched[a: a + int(batch_size)]
        moved = transposed_target(codec, target[rows_a], [shifts[i] for i in rows_a], seed=seed + k * rows + a)
        fits.update(zip(rows_a, transpose_fit(codec, target[rows_a], moved, [shifts[i] for i in rows_a])))
        target[rows_a] = moved.to(target.dtype)
    parts = {name: [t] for name, t in tensors.items() if name != "index"}
    parts["target"] = [target]
    parts[CHROMA_KEY] = [rolled_chroma(tensors[CHROMA_KEY].float(), shifts)]
    items = [dict(item, transpose=s, **({"transpose_fit": round(fits[i], 4)} if i in fits else {}))
             for i, (item, s) in enumerate(zip(meta["items"], shifts))]
    _write_shard(out, k, [int(i) for i in tensors["index"]], parts, items)
