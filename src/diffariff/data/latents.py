"""Pre-encoded latent cache: train the diffusion model without running the codec or CLAP per step.

Layout of a cache folder::

    manifest.json            recipe (pairs config, seed, shard size), codec / CLAP identities, counts,
                             latent statistics of the targets (per channel and global); rewritten
                             after each shard, so an interrupted build is a readable smaller cache
    shard_00000.safetensors  target [S, 64, T], context [S, 64, T]  codec latents (float16)
                             context_chroma [S, 12, T]              the context's chroma (float16, in [0, 1])
                             clap_audio [S, D], clap_text [S, D]    CLAP embeddings (float32)
                             index [S] (int64: the pair index of each row)
    shard_00000.json         per row: song, stem, role, instrument, tags, prompt, start, reference_start

Row ``j`` of shard ``k`` is pair ``k * shard_size + j`` of :class:`~diffariff.data.pairs.PairSampler`
(a deterministic function of the seed and the index), so shards can be (re)built independently:
a build skips every shard that is already complete (both files present, written atomically, with the
expected rows), and an interrupted build resumes where it stopped. ``clap_audio`` embeds the pair's
reference clip (another segment of the same target stem); ``clap_text`` embeds a tag prompt of the
target stem drawn by :func:`diffariff.clap.prompts.stem_prompt` with a generator seeded by the pair.
T = ceil(window samples / 4096) latent frames (118 for 10 s at 48 kHz).

``context_chroma`` (recipe field ``context_chroma``, on by default) is
:func:`~diffariff.data.context_chroma.context_chroma` of the same context audio the codec encodes, one
12-bin column per latent frame, for latent models trained with ``context_chroma``. Caches built before
it existed have none (their manifest's recipe lacks the field, read as false); a build into such a
cache must say ``--no-context-chroma`` (the recipe must match), and a chroma model refuses to train
on it. Caches read together keep the chroma only when all of them have it.
"""

from __future__ import annotations

import bisect
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from ..errors import DatasetError, InputError
from ..fsutil import atomic_path, write_json_atomic
from .context_chroma import context_chroma
from .pairs import PairConfig, PairSampler
from .songs import Song

MANIFEST = "manifest.json"
CACHE_FORMAT = "diffariff-latent-cache"
CACHE_VERSION = 1
#: the shard tensor holding the context chroma (when the recipe's ``context_chroma`` is on)
CHROMA_KEY = "context_chroma"
#: recipe fields added after caches were first built, with the value a manifest without them implies
LATER_RECIPE_FIELDS = {"context_chroma": False}


@dataclass
class CacheRecipe:
    """What determines a cache's content (stored in the manifest; a resumed build must match it,
    except ``pairs``, which may grow)."""

    pairs: int
    seed: int = 0
    shard_size: int = 256
    window_seconds: float = 10.0
    reference_seconds: float | None = None
    context_probability: float = 0.5
    silence_threshold_db: float = -50.0
    split: str | None = "train"
    layout: str = "auto"
    context_chroma: bool = True

    def __post_init__(self) -> None:
        if self.pairs < 1:
            raise InputError(f"--pairs must be >= 1, got {self.pairs}")
        if self.shard_size < 1:
            raise InputError(f"--shard-size must be >= 1, got {self.shard_size}")

    def pair_config(self, channels: int) -> PairConfig:
        return PairConfig(window_seconds=self.window_seconds, sample_rate=48_000, channels=channels,
                          silence_threshold_db=self.silence_threshold_db, reference_seconds=self.reference_seconds,
                          context_probability=self.context_probability)

    @property
    def num_shards(self) -> int:
        return math.ceil(self.pairs / self.shard_size)

    def shard_rows(self, k: int) -> range:
        return range(k * self.shard_size, min((k + 1) * self.shard_size, self.pairs))


def shard_path(root: Path, k: int, suffix: str = ".safetensors") -> Path:
    return Path(root) / f"shard_{k:05d}{suffix}"


def shard_is_complete(root: Path, k: int, rows: range, chroma: bool | None = None) -> bool:
    """Both files of shard ``k`` exist and hold exactly ``rows`` (and, when ``chroma`` is given, hold
    the context chroma or not as it says)."""
    st, side = shard_path(root, k), shard_path(root, k, ".json")
    if not (st.is_file() and side.is_file()):
        return False
    try:
        with safe_open(str(st), framework="pt") as f:
            meta = f.metadata() or {}
            has_chroma = CHROMA_KEY in f.keys()
        if chroma is not None and has_chroma != chroma:
            return False
        return int(meta.get("first", -1)) == rows.start and int(meta.get("count", -1)) == len(rows)
    except Exception:
        return False


def _compatible(old: dict, new: dict) -> list[str]:
    """Recipe fields (but ``pairs``) in which a stored recipe ``old`` differs from ``new``; a field the
    stored recipe lacks counts with its :data:`LATER_RECIPE_FIELDS` value."""
    keys = [k for k in new if k != "pairs"]
    return [k for k in keys if old.get(k, LATER_RECIPE_FIELDS.get(k)) != new.get(k)]


def has_context_chroma(manifest: dict) -> bool:
    """Whether the cache of ``manifest`` stores the context chroma (every cache, when several are read
    as one: the manifest of :class:`LatentCacheDataset` says so in ``context_chroma``)."""
    if "context_chroma" in manifest:
        return bool(manifest["context_chroma"])
    return bool(manifest.get("recipe", {}).get("context_chroma", LATER_RECIPE_FIELDS["context_chroma"]))


class Encoders:
    """The two encoders a build needs, as plain callables (so tests and other codecs plug in):
    ``encode(audio [B, C, N] 48 kHz) -> latents [B, 64, T]``, ``embed_audio(audio [B, C, N]) -> [B, D]``,
    ``embed_text(list[str]) -> [B, D]``; ``channels`` = audio channels the codec uses (1 or 2);
    ``samples_per_frame``: audio samples per latent frame (the context chroma's frame)."""

    def __init__(self, codec, clap, codec_id: str = "", clap_id: str = ""):
        self.codec = codec
        self.clap = clap
        self.codec_id = codec_id
        self.clap_id = clap_id
        self.channels = 1 if getattr(codec.config, "stereo", "mono") == "mono" else 2
        self.latent_channels = int(getattr(codec.config, "latent_dim", 64))
        self.samples_per_frame = int(getattr(codec.config, "samples_per_frame", 4096))
        self.clap_dim = int(clap.dim)


def _encode_rows(enc: Encoders, sampler: PairSampler, rows: list[int], seed: int,
                 chroma: bool = False) -> tuple[dict, list[dict]]:
    from ..clap.prompts import stem_prompt

    items = [sampler.pair(i) for i in rows]
    context = torch.stack([it["context"] for it in items])
    target = torch.stack([it["target"] for it in items])
    reference = torch.stack([it["reference"] for it in items])
    meta, prompts = [], []
    for it in items:
        song = next(s for s in sampler.songs if s.name == it["song"])
        stem = song.stems[it["target_stem"]]
        stem_meta = {**stem.meta, "role": it["target_role"], "instrument": it["target_instrument"],
                     "family": it["target_family"], "tags": it["target_tags"]}
        prompt = stem_prompt(stem_meta, np.random.default_rng([seed, it["index"], 1]))
        prompts.append(prompt)
        meta.append({"index": it["index"], "song": it["song"], "stem": it["target_stem"], "role": it["target_role"],
                     "instrument": it["target_instrument"], "tags": it["target_tags"], "prompt": prompt,
                     "context_stems": it["context_stems"], "start": it["start"],
                     "reference_start": it["reference_start"]})
    tensors = {
        "target": enc.codec.encode(target).float(),
        "context": enc.codec.encode(context).float(),
        "clap_audio": enc.clap.embed_audio(reference).float(),
        "clap_text": enc.clap.embed_text(prompts).float(),
    }
    if chroma:
        tensors[CHROMA_KEY] = context_chroma(context, enc.samples_per_frame, 48_000)
        if tensors[CHROMA_KEY].shape[-1] != tensors["context"].shape[-1]:
            raise DatasetError(f"the context chroma has {tensors[CHROMA_KEY].shape[-1]} frames, the context "
                               f"latents {tensors['context'].shape[-1]}: the codec's samples_per_frame "
                               f"({enc.samples_per_frame}) does not match its latents")
    return tensors, meta


def build_latent_cache(
    encoders: Encoders,
    songs: list[Song],
    out: str | os.PathLike,
    recipe: CacheRecipe,
    *,
    batch_size: int = 8,
    data_root: str = "",
    progress: bool = True,
    on_shard: Callable[[int], None] | None = None,
    worker: tuple[int, int] = (0, 1),
) -> dict | None:
    """Encode ``recipe.pairs`` pairs of ``songs`` into shards under ``out``; skip complete shards.

    Returns the manifest dict (also written to ``out/manifest.json``). Raises InputError when ``out``
    holds a cache built with another recipe, codec or CLAP. ``on_shard(k)`` is called after each
    shard written (progress lines, tests).

    While the build runs, the manifest describes the longest complete run of shards ``0..p-1`` (with
    ``"complete": false`` and ``"target_pairs"``), so a build stopped part-way leaves a cache the
    trainer can read; the final manifest has ``"complete": true``.

    ``worker=(i, n)`` builds only the shards ``k`` with ``k % n == i``, so ``n`` processes (e.g. one
    per core, each with one thread) can fill one cache together; the manifest is written by whichever
    worker finds every shard complete at its end. Returns None when shards of other workers are still
    missing.
    """
    wid, nworkers = worker
    if nworkers < 1 or not 0 <= wid < nworkers:
        raise InputError(f"--worker must be I/N with 0 <= I < N, got {wid}/{nworkers}")
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InputError(f"--out {root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    ident = {"codec_id": encoders.codec_id, "clap_id": encoders.clap_id, "recipe": asdict(recipe)}
    mpath = root / MANIFEST
    if mpath.is_file():
        old = json.loads(mpath.read_text(encoding="utf-8"))
        bad = _compatible(old.get("recipe", {}), ident["recipe"])
        bad += [k for k in ("codec_id", "clap_id") if old.get(k) != ident[k]]
        if bad == ["context_chroma"]:
            have = old.get("recipe", {}).get("context_chroma", LATER_RECIPE_FIELDS["context_chroma"])
            raise InputError(f"{root} holds a cache {'with' if have else 'without'} context chroma; build into it "
                             f"{'without' if have else 'with'} --no-context-chroma, or use a new --out")
        if bad:
            raise InputError(f"{root} holds a cache built with a different {', '.join(bad)}; use a new --out")
    sampler = PairSampler(songs, recipe.pair_config(encoders.channels), recipe.seed)
    todo = [k for k in range(recipe.num_shards)
            if k % nworkers == wid and not shard_is_complete(root, k, recipe.shard_rows(k), recipe.context_chroma)]
    total = sum(len(recipe.shard_rows(k)) for k in todo)
    bar = tqdm(total=total, desc="encoding pairs", unit="pair", disable=not progress)
    try:
        for k in todo:
            rows = list(recipe.shard_rows(k))
            parts: dict[str, list[torch.Tensor]] = {}
            meta: list[dict] = []
            for i in range(0, len(rows), batch_size):
                tensors, m = _encode_rows(encoders, sampler, rows[i:i + batch_size], recipe.seed,
                                          recipe.context_chroma)
                for name, t in tensors.items():
                    parts.setdefault(name, []).append(t)
                meta += m
                bar.update(len(m))
            _write_shard(root, k, rows, parts, meta)
            done = _complete_prefix(root, recipe)
            if 0 < done < recipe.num_shards:
                _write_manifest(root, encoders, sampler, recipe, done, data_root)
            if on_shard is not None:
                on_shard(k)
    finally:
        bar.close()
    if _complete_prefix(root, recipe) < recipe.num_shards:
        return None
    return _write_manifest(root, encoders, sampler, recipe, recipe.num_shards, data_root)


def _complete_prefix(root: Path, recipe: CacheRecipe) -> int:
    """Number ``p`` of shards such that shards ``0..p-1`` are all complete."""
    p = 0
    while p < recipe.num_shards and shard_is_complete(root, p, recipe.shard_rows(p), recipe.context_chroma):
        p += 1
    return p


def _write_manifest(root: Path, encoders: Encoders, sampler: PairSampler, recipe: CacheRecipe, shards: int,
                    data_root: str) -> dict:
    """Write (atomically) and return the manifest of the first ``shards`` complete shards; when these
    are not all of ``recipe``'s, the manifest is that of a smaller build (``pairs`` = their rows), marked
    ``"complete": false``, with the build's goal in ``"target_pairs"``."""
    pairs = recipe.shard_rows(shards - 1).stop
    part = CacheRecipe(**{**asdict(recipe), "pairs": pairs})
    manifest = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "codec_id": encoders.codec_id,
                "clap_id": encoders.clap_id, "recipe": asdict(part), "data": data_root,
                "songs": len(sampler.songs), "skipped_songs": sampler.skipped_songs,
                "pairs": pairs, "shards": shards, "complete": shards == recipe.num_shards,
                "target_pairs": recipe.pairs,
                "latent_channels": encoders.latent_channels, "clap_dim": encoders.clap_dim,
                "codec_channels": encoders.channels, "sample_rate": 48_000,
                "stats": latent_statistics(root, shards)}
    first = _read_shard(root, 0)
    manifest["frames"] = int(first["target"].shape[-1])
    write_json_atomic(root / MANIFEST, manifest)
    return manifest


def _write_shard(root: Path, k: int, rows: list[int], parts: dict, meta: list[dict]) -> None:
    tensors = {name: torch.cat(ts) for name, ts in parts.items()}
    tensors["target"] = tensors["target"].half()
    tensors["context"] = tensors["context"].half()
    if CHROMA_KEY in tensors:
        tensors[CHROMA_KEY] = tensors[CHROMA_KEY].half()
    tensors["index"] = torch.tensor(rows, dtype=torch.int64)
    write_json_atomic(shard_path(root, k, ".json"), {"first": rows[0], "count": len(rows), "items": meta})
    with atomic_path(shard_path(root, k)) as tmp:
        save_file({n: t.contiguous() for n, t in tensors.items()}, str(tmp),
                  metadata={"first": str(rows[0]), "count": str(len(rows))})


def _read_shard(root: Path, k: int) -> dict[str, torch.Tensor]:
    path = shard_path(root, k)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:
        raise DatasetError(f"{path}: unreadable latent shard ({str(exc).splitlines()[0]})") from None


def latent_statistics(root: str | os.PathLike, shards: int) -> dict:
    """Per-channel and global mean / std of the **target** latents of ``shards`` shards (float64
    streaming sums): {"channel_mean": [C], "channel_std": [C], "mean": float, "std": float,
    "context_std": float}."""
    return _statistics((_read_shard(Path(root), k) for k in range(shards)), str(root))


def _statistics(parts, where: str) -> dict:
    """:func:`latent_statistics` over an iterable of ``{"target": [S, C, T], "context": [S, C, T]}``."""
    s1 = s2 = None
    c1 = c2 = 0.0
    n = cn = 0
    for sh in parts:
        t = sh["target"].double()
        s1 = t.sum(dim=(0, 2)) if s1 is None else s1 + t.sum(dim=(0, 2))
        s2 = (t * t).sum(dim=(0, 2)) if s2 is None else s2 + (t * t).sum(dim=(0, 2))
        n += t.shape[0] * t.shape[2]
        c = sh["context"].double()
        c1 += float(c.sum())
        c2 += float((c * c).sum())
        cn += c.numel()
    if s1 is None or n < 2:
        raise DatasetError(f"{where}: no latents to measure")
    mean = s1 / n
    var = (s2 / n - mean * mean).clamp_min(0)
    g_mean = float(s1.sum() / (n * len(s1)))
    g_var = max(float(s2.sum() / (n * len(s1))) - g_mean**2, 0.0)
    c_mean = c1 / cn
    return {"channel_mean": mean.tolist(), "channel_std": var.sqrt().tolist(), "mean": g_mean,
            "std": math.sqrt(g_var), "context_std": math.sqrt(max(c2 / cn - c_mean**2, 0.0))}


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of the cache at ``root``; DatasetError when it is not a (complete) cache."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{root}: not a latent cache (no {MANIFEST}; build one with `diffariff latents build`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: malformed JSON ({exc.msg})") from None
    if manifest.get("format") != CACHE_FORMAT:
        raise DatasetError(f"{path}: not a diffariff latent cache manifest")
    return manifest


def check_model_fits_cache(config, manifest: dict, what: str) -> None:
    """InputError when a latent model's config (``codec_id`` / ``clap_id``, where recorded) differs from
    the codec or CLAP a cache was built with, or when the model takes the context chroma
    (``context_chroma``) and the cache stores none; ``what`` names the model in the message (e.g. --init)."""
    for key in ("codec_id", "clap_id"):
        have, want = getattr(config, key, ""), manifest.get(key)
        if have and want and have != want:
            raise InputError(f"{what} was trained with {have}, but the cache was built with {want}")
    if getattr(config, "context_chroma", False) and not has_context_chroma(manifest):
        raise InputError(f"{what} takes the context chroma (context_chroma), but the cache stores none (built "
                         "before it existed or with --no-context-chroma); rebuild it with `diffariff latents build`")


#: manifest fields that caches read together as one data set must share
_SAME_ACROSS_CACHES = ("codec_id", "clap_id", "latent_channels", "clap_dim", "codec_channels", "sample_rate", "frames")


def open_caches(root: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], list[dict]]:
    """The folders and manifests of one cache or of several read as one data set (DatasetError when they
    do not share codec, CLAP and latent length)."""
    roots = [Path(r) for r in ([root] if isinstance(root, (str, os.PathLike)) else root)]
    if not roots:
        raise InputError("no latent cache given")
    manifests = [read_manifest(r) for r in roots]
    for r, man in zip(roots[1:], manifests[1:]):
        bad = [k for k in _SAME_ACROSS_CACHES if man.get(k) != manifests[0].get(k)]
        if bad:
            raise DatasetError(f"{r} differs from {roots[0]} in {', '.join(bad)}; these caches cannot be "
                               "read together")
    return roots, manifests


def _read_cache_rows(root: Path, manifest: dict, limit: int | None) -> dict[str, torch.Tensor]:
    """Every tensor of a cache's shards (the first ``limit`` rows when given), concatenated."""
    parts: dict[str, list[torch.Tensor]] = {}
    rows = 0
    for k in range(int(manifest["shards"])):
        if limit is not None and rows >= int(limit):
            break  # the first ``limit`` rows are read; later shards are not
        if not shard_path(root, k).is_file():
            raise DatasetError(f"{root}: shard {k} is missing (re-run `diffariff latents build`)")
        for name, t in _read_shard(root, k).items():
            parts.setdefault(name, []).append(t)
        rows += int(parts["target"][-1].shape[0])
    tensors = {name: torch.cat(ts) for name, ts in parts.items()}
    return tensors if limit is None else {name: t[: int(limit)] for name, t in tensors.items()}


class LatentCacheDataset(torch.utils.data.Dataset):
    """All rows of one latent cache, or of several read as one, held in memory (float16 latents).

    Item ``i``: ``target`` / ``context`` float32 [64, F] codec latents, ``clap_audio`` / ``clap_text``
    float32 [D], ``index`` (pair index within its cache), and when the cache has it (see
    :attr:`has_context_chroma`) ``context_chroma`` float32 [12, F]. F = ``train_frames`` (a random crop,
    the same span for target, context and chroma) or the full cached length T when ``full_length`` or
    ``train_frames`` is None. Crops are a deterministic function of (``seed``, epoch set by
    :meth:`set_epoch`, i).

    ``root`` may be a list of cache folders (e.g. the caches of two corpora): their rows follow one
    another in the given order; they must share codec, CLAP and latent length (DatasetError otherwise);
    ``manifest`` is then the first cache's, with ``pairs`` the total, ``caches`` the folders and
    ``stats`` measured on all rows; the context chroma is kept only when every cache has it.
    ``limit`` keeps the first ``limit`` rows in all.
    """

    def __init__(self, root: str | os.PathLike | Sequence[str | os.PathLike], train_frames: int | None = None,
                 full_length: bool = False, seed: int = 0, limit: int | None = None):
        self.roots, self._manifests = roots, manifests = open_caches(root)
        per_cache, left = [], limit
        for r, man in zip(roots, manifests):
            if left is not None and left <= 0:
                break
            per_cache.append(_read_cache_rows(r, man, left))
            left = None if left is None else left - int(per_cache[-1]["target"].shape[0])
        # a tensor only some caches have (the context chroma) is left out
        self.tensors = {name: torch.cat([t[name] for t in per_cache]) for name in per_cache[0]
                        if all(name in t for t in per_cache)}
        #: whether the items carry ``context_chroma`` (every cache read has it)
        self.has_context_chroma = CHROMA_KEY in self.tensors
        #: first row of each cache that was read, and one past the last
        self.offsets = [0]
        for t in per_cache:
            self.offsets.append(self.offsets[-1] + int(t["target"].shape[0]))
        self.manifest = manifests[0]
        if len(roots) > 1:
            self.manifest = {**manifests[0], "pairs": len(self), "caches": [str(r) for r in roots],
                             "stats": _statistics([self.tensors], ", ".join(map(str, roots))),
                             "context_chroma": self.has_context_chroma}
        self.frames = int(self.tensors["target"].shape[-1])
        self._set_crops(train_frames, full_length, seed)

    def _set_crops(self, train_frames: int | None, full_length: bool, seed: int) -> None:
        """The crop settings of items (``self.frames`` must be set): ``train_frames`` latent frames per
        crop (None: whole items) in [1, frames], ``full_length``, the crop ``seed``, epoch 0."""
        if train_frames is not None and not 1 <= int(train_frames) <= self.frames:
            raise InputError(f"train_frames must be in [1, {self.frames}] for this cache, got {train_frames}")
        self.train_frames = None if train_frames is None else int(train_frames)
        self.full_length = bool(full_length)
        self.seed = int(seed)
        self.epoch = 0

    @property
    def clap_dim(self) -> int:
        return int(self.tensors["clap_audio"].shape[1])

    def set_epoch(self, epoch: int) -> None:
        """Change the crops drawn (call at each epoch start)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.tensors["target"].shape[0])

    def crop_start(self, i: int) -> int:
        if self.full_length or self.train_frames is None or self.train_frames == self.frames:
            return 0
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        return int(rng.integers(0, self.frames - self.train_frames + 1))

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"latent cache index {i} out of range for {len(self)} rows")
        s = self.crop_start(i)
        f = self.frames if (self.full_length or self.train_frames is None) else self.train_frames
        row = self.row(i, s, f)
        item = {"target": row["target"].float(), "context": row["context"].float(),
                "clap_audio": row["clap_audio"].float(), "clap_text": row["clap_text"].float(),
                "index": int(row["index"])}
        if CHROMA_KEY in row:
            item[CHROMA_KEY] = row[CHROMA_KEY].float()
        return item

    def row(self, i: int, start: int, frames: int) -> dict[str, torch.Tensor]:
        """Row ``i`` as stored: ``target`` / ``context`` [64, frames] from latent frame ``start`` (and
        ``context_chroma`` [12, frames] when the cache has it), ``clap_audio`` / ``clap_text`` [D],
        ``index`` (0-d)."""
        t = self.tensors
        row = {"target": t["target"][i, :, start:start + frames], "context": t["context"][i, :, start:start + frames],
               "clap_audio": t["clap_audio"][i], "clap_text": t["clap_text"][i], "index": t["index"][i]}
        if self.has_context_chroma:
            row[CHROMA_KEY] = t[CHROMA_KEY][i, :, start:start + frames]
        return row

    def metadata(self, i: int) -> dict:
        """The sidecar metadata (song, stem, tags, prompt, start, ...) of row ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(f"latent cache index {i} out of range for {len(self)} rows")
        c = bisect.bisect_right(self.offsets, i) - 1
        shard_size = int(self._manifests[c]["recipe"]["shard_size"])
        k, j = divmod(i - self.offsets[c], shard_size)
        side = json.loads(shard_path(self.roots[c], k, ".json").read_text(encoding="utf-8"))
        return side["items"][j]
