"""Resumable embedding caches for the evaluation protocol.

An embedding depends only on the embedder's weights and on the clip itself, so it is keyed by
``(model id, content hash)``: the model id is a hash of the CLAP checkpoint file (or any string
the caller gives for an in-memory embedder), the content hash a BLAKE2b digest of the clip's
float32 samples, shape and sample rate (or of the text, for text embeddings).

Entries are grouped in *namespaces* (one per evaluated setting, one for the real-data side, one
for text), one ``.npz`` file each under ``root/<model id>/<namespace>.npz``. A look-up searches
every namespace on disk, so a candidate set that repeats clips embedded elsewhere (e.g. the real
stems) costs nothing, and re-running one setting rewrites only that setting's file. Files are
written atomically (:func:`diffariff.fsutil.atomic_path`) at each :meth:`EmbeddingCache.flush`,
so an interrupted run keeps everything flushed so far. Files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..fsutil import atomic_path

#: Characters of a digest kept in keys and folder names.
_DIGEST_CHARS = 32


def audio_key(audio, sample_rate: int) -> str:
    """Content hash of one clip ``[C, N]`` (float32 samples + shape + rate)."""
    arr = np.ascontiguousarray(np.asarray(audio, dtype=np.float32))
    h = hashlib.blake2b(digest_size=_DIGEST_CHARS // 2)
    h.update(f"audio:{arr.shape}:{int(sample_rate)}:".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def text_key(text: str) -> str:
    """Content hash of one prompt."""
    return hashlib.blake2b(f"text:{text}".encode(), digest_size=_DIGEST_CHARS // 2).hexdigest()


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._")
    if not cleaned:
        raise InputError(f"cache namespace '{name}' has no usable characters")
    return cleaned


class EmbeddingCache:
    """Content-addressed embeddings ``[D]`` (float32) for one model, grouped in namespaces.

    Args:
        root: cache folder (created on the first flush); ``None`` keeps everything in memory.
        model_id: identity of the embedder (e.g. :func:`~diffariff.checkpoint.file_sha256` of the CLAP checkpoint).
    """

    def __init__(self, root: str | os.PathLike | None, model_id: str):
        if not model_id:
            raise InputError("an embedding cache needs a non-empty model id")
        self.model_id = str(model_id)
        self.folder = None if root is None else Path(root) / _safe_name(self.model_id)[:_DIGEST_CHARS]
        self._spaces: dict[str, dict[str, np.ndarray]] = {}
        self._dirty: set[str] = set()
        self._index: dict[str, np.ndarray] = {}
        if self.folder is not None and self.folder.is_dir():
            for path in sorted(self.folder.glob("*.npz")):
                self._read(path)

    def _read(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as data:
                keys, emb = data["keys"], data["emb"]
        except (OSError, ValueError, KeyError):
            return  # an unreadable cache file is only a cache miss
        if keys.ndim != 1 or emb.ndim != 2 or keys.shape[0] != emb.shape[0]:
            return
        space = {str(k): emb[i].astype(np.float32) for i, k in enumerate(keys)}
        self._spaces[path.stem] = space
        self._index.update(space)

    def __len__(self) -> int:
        return len(self._index)

    def get(self, key: str) -> np.ndarray | None:
        """The cached embedding ``[D]`` of ``key`` from any namespace, or None."""
        return self._index.get(key)

    def put(self, namespace: str, key: str, value) -> None:
        """Store ``value`` (``[D]``) under ``key`` in ``namespace`` (written at the next flush)."""
        ns = _safe_name(namespace)
        vec = np.asarray(value, dtype=np.float32).reshape(-1)
        self._spaces.setdefault(ns, {})[key] = vec
        self._index[key] = vec
        self._dirty.add(ns)

    def claim(self, namespace: str, key: str) -> None:
        """Record that ``namespace`` uses ``key`` (copying a hit from another namespace), so the
        namespace's file is complete on its own."""
        ns = _safe_name(namespace)
        value = self._index.get(key)
        if value is not None and key not in self._spaces.get(ns, {}):
            self._spaces.setdefault(ns, {})[key] = value
            self._dirty.add(ns)

    def flush(self) -> list[Path]:
        """Write the namespaces changed since the last flush; return the files written."""
        if self.folder is None:
            self._dirty.clear()
            return []
        written = []
        for ns in sorted(self._dirty):
            space = self._spaces[ns]
            keys = np.array(sorted(space), dtype=f"<U{_DIGEST_CHARS}")
            emb = np.stack([space[k] for k in keys]) if len(keys) else np.zeros((0, 0), np.float32)
            path = self.folder / f"{ns}.npz"
            with atomic_path(path) as tmp:
                np.savez(tmp, keys=keys, emb=emb)
            written.append(path)
        self._dirty.clear()
        return written


class CachedEmbedder:
    """An embedder (``embed_audio(audio [B, C, N], sample_rate=...) -> [B, D]``, ``embed_text(list)
    -> [B, D]``) behind an :class:`EmbeddingCache`; only cache misses reach the model.

    ``calls`` counts the model calls made (audio and text batches), ``computed`` the clips/prompts
    embedded by the model.
    """

    def __init__(self, embedder, cache: EmbeddingCache, *, sample_rate: int = 48_000, batch_size: int = 8):
        if not hasattr(embedder, "embed_audio"):
            raise InputError("the embedder must expose embed_audio(audio [B, C, N]) -> [B, D]")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.embedder = embedder
        self.cache = cache
        self.sample_rate = int(sample_rate)
        self.batch_size = int(batch_size)
        self.calls = 0
        self.computed = 0

    def embed_audio(self, clips: Sequence, namespace: str, progress=None) -> np.ndarray:
        """Embeddings ``float64 [len(clips), D]`` of clips ``[C, N_i]`` at :attr:`sample_rate` Hz.

        Misses are embedded in batches of equal-shaped clips; every result is stored in ``namespace``.
        ``progress``: a tqdm bar to advance by one per clip (optional).
        """
        arrays = [np.ascontiguousarray(np.asarray(c, dtype=np.float32)) for c in clips]
        keys = [audio_key(a, self.sample_rate) for a in arrays]
        missing = [i for i, k in enumerate(keys) if self.cache.get(k) is None]
        for k in keys:
            self.cache.claim(namespace, k)  # no-op for misses: they are put below
        if progress is not None:
            progress.update(len(keys) - len(missing))
        start = 0
        while start < len(missing):
            stop = start + 1
            shape = arrays[missing[start]].shape
            while stop < len(missing) and stop - start < self.batch_size and arrays[missing[stop]].shape == shape:
                stop += 1
            idx = missing[start:stop]
            batch = torch.from_numpy(np.stack([arrays[i] for i in idx]))
            with torch.no_grad():
                emb = self.embedder.embed_audio(batch, sample_rate=self.sample_rate)
            emb = _as_rows(emb, len(idx))
            self.calls += 1
            self.computed += len(idx)
            for i, row in zip(idx, emb):
                self.cache.put(namespace, keys[i], row)
            if progress is not None:
                progress.update(len(idx))
            start = stop
        if not keys:
            raise InputError("no clips to embed")
        return np.stack([self.cache.get(k) for k in keys]).astype(np.float64)

    def embed_text(self, texts: Sequence[str], namespace: str = "text") -> np.ndarray:
        """Embeddings ``float64 [len(texts), D]`` of prompts (distinct misses embedded in one call)."""
        texts = [str(t) for t in texts]
        if not texts:
            raise InputError("no prompts to embed")
        if not hasattr(self.embedder, "embed_text"):
            raise InputError("the embedder has no embed_text(list[str]) -> [B, D] (needed for CS_TA)")
        keys = [text_key(t) for t in texts]
        todo = list(dict.fromkeys(t for t, k in zip(texts, keys) if self.cache.get(k) is None))
        if todo:
            with torch.no_grad():
                emb = _as_rows(self.embedder.embed_text(todo), len(todo))
            self.calls += 1
            self.computed += len(todo)
            for t, row in zip(todo, emb):
                self.cache.put(namespace, text_key(t), row)
        for k in keys:
            self.cache.claim(namespace, k)
        return np.stack([self.cache.get(k) for k in keys]).astype(np.float64)


def _as_rows(emb, n: int) -> np.ndarray:
    arr = emb.detach().float().cpu().numpy() if hasattr(emb, "detach") else np.asarray(emb, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InputError(f"embedder returned shape {tuple(arr.shape)} for {n} inputs (expected [B, D])")
    if not np.all(np.isfinite(arr)):
        raise InputError("embedder returned NaN or infinite values")
    return arr
