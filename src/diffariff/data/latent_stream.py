"""A latent cache read lazily, row by row, from its memory-mapped shards: data larger than memory.

:class:`StreamingLatentCache` is a :class:`~diffariff.data.latents.LatentCacheDataset` (same items,
crops, ``set_epoch`` and ``metadata``) that holds no tensors: item ``i`` is sliced from its
``shard_KKKKK.safetensors`` through ``safetensors.safe_open`` (an ``mmap`` of the file; only the asked
row and crop are read from disk). Each process opens its own handles on first use, so DataLoader
workers and distributed ranks (each drawing its own rows through a ``DistributedSampler``) read
independently; the handles are never pickled.

Memory: O(shards) open file handles and the page cache the OS chooses to keep, whatever the cache size.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open

from ..errors import DatasetError
from .latents import CHROMA_KEY, LatentCacheDataset, has_context_chroma, open_caches, shard_path


class StreamingLatentCache(LatentCacheDataset):
    """Rows of one latent cache, or of several read as one, read on demand (float16 on disk).

    Items are those of :class:`LatentCacheDataset` with the same arguments: ``target`` / ``context``
    float32 [64, F] codec latents (F = ``train_frames`` random crop, or the cached length T),
    ``clap_audio`` / ``clap_text`` float32 [D], ``index``, and ``context_chroma`` [12, F] when every
    cache has it. Every cache's manifest must describe shards that are all present (a complete or
    part-way build)."""

    def __init__(self, root: str | os.PathLike | Sequence[str | os.PathLike], train_frames: int | None = None,
                 full_length: bool = False, seed: int = 0):
        self.roots, self._manifests = open_caches(root)
        self.offsets = [0]
        for r, man in zip(self.roots, self._manifests):
            for k in range(int(man["shards"])):
                if not shard_path(r, k).is_file():
                    raise DatasetError(f"{r}: shard {k} is missing (re-run the cache build)")
            self.offsets.append(self.offsets[-1] + int(man["pairs"]))
        self.manifest = self._manifests[0]
        self.has_context_chroma = all(has_context_chroma(m) for m in self._manifests)
        if len(self.roots) > 1:
            self.manifest = {**self.manifest, "pairs": len(self), "caches": [str(r) for r in self.roots],
                             "context_chroma": self.has_context_chroma}
        self.frames = int(self.manifest["frames"])
        self._set_crops(train_frames, full_length, seed)
        self._handles: dict[tuple[int, int], object] = {}
        self._pid = os.getpid()

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        raise DatasetError("a streaming latent cache holds no tensors in memory; read it item by item")

    @property
    def clap_dim(self) -> int:
        return int(self.manifest["clap_dim"])

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getstate__(self) -> dict:  # DataLoader workers / spawned ranks open their own handles
        return {**self.__dict__, "_handles": {}}

    def _shard(self, c: int, k: int):
        if self._pid != os.getpid():  # a forked worker: never share the parent's handles
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get((c, k))
        if handle is None:
            path = shard_path(Path(self.roots[c]), k)
            try:
                handle = safe_open(str(path), framework="pt")
            except Exception as exc:
                raise DatasetError(f"{path}: unreadable latent shard ({str(exc).splitlines()[0]})") from None
            self._handles[(c, k)] = handle
        return handle

    def row(self, i: int, start: int, frames: int) -> dict[str, torch.Tensor]:
        """Row ``i`` read from disk (see :meth:`LatentCacheDataset.row`)."""
        c = bisect.bisect_right(self.offsets, i) - 1
        k, j = divmod(i - self.offsets[c], int(self._manifests[c]["recipe"]["shard_size"]))
        f = self._shard(c, k)
        span = slice(start, start + frames)
        row = {"target": f.get_slice("target")[j, :, span], "context": f.get_slice("context")[j, :, span],
               "clap_audio": f.get_slice("clap_audio")[j], "clap_text": f.get_slice("clap_text")[j],
               "index": f.get_slice("index")[j]}
        if self.has_context_chroma:
            row[CHROMA_KEY] = f.get_slice(CHROMA_KEY)[j, :, span]
        return row
