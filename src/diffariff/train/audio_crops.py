"""Training audio of the codec trainers (:mod:`diffariff.train.codec`, :mod:`diffariff.train.synth_codec`),
held in RAM: the clips of multitrack corpora and plain-mixture folders decoded once as ``float16``
(:func:`load_training_audio`, :func:`load_corpus`; songs of split "test" / "valid" are held out), endless
random training crops that mostly skip near-silent ones (:class:`CropStream`), and the deterministic
held-out batch the trainers evaluate on (:func:`held_out_batch`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError

HELD_OUT_SPLITS = ("test", "valid", "validation")


def load_corpus(root: str | Path, channels: int,
                sample_rate: int = 48_000) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decode every stem and every song mixture into RAM: (train clips, held-out clips), each a list of
    ``float16 [channels, N]`` arrays. Held out: songs whose split is test / valid (when no song has such
    a split, the last song)."""
    from ..data.sources import open_dataset

    songs = open_dataset(root)
    train, held = [], []
    held_names = {s.name for s in songs if (s.split or "").lower() in HELD_OUT_SPLITS}
    if not held_names and len(songs) > 1:  # no split metadata: hold out the last song
        held_names = {songs[-1].name}
    for song in songs:
        clips = [song.load_stem(name, sample_rate, channels) for name in song.stems]
        if len(clips) > 1:
            n = min(c.shape[1] for c in clips)
            mix = sum(c[:, :n] for c in clips)
            peak = float(np.abs(mix).max())
            clips.append(mix / peak * 0.9 if peak > 0.99 else mix)
        dest = held if song.name in held_names else train
        dest.extend(np.clip(c, -1, 1).astype(np.float16) for c in clips if c.shape[1] > 0)
    if not train:
        raise DatasetError(f"{root}: no training audio found (songs: {len(songs)})")
    return train, held


def load_training_audio(data_roots, real_roots, channels: int, sample_rate: int = 48_000, *,
                        real_spans: int = 600, real_span_seconds: float = 8.0, held_spans: int = 4,
                        held_seconds: float = 5.0,
                        seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A codec's training audio: every stem and mixture of each multitrack folder in ``data_roots``
    (:func:`load_corpus`) and ``real_spans`` random spans of ``real_span_seconds`` from the train split
    of each plain-mixture folder in ``real_roots`` (:mod:`diffariff.data.mixtures`), with ``held_spans``
    spans of its test split held out. Returns (train, held-out) lists of ``float16 [channels, N]``;
    the held-out list interleaves the folders so that the first clips cover every source."""
    from ..data.mixtures import load_mixtures, random_spans

    data_roots = [data_roots] if isinstance(data_roots, str | Path) else list(data_roots or [])
    real_roots = [real_roots] if isinstance(real_roots, str | Path) else list(real_roots or [])
    train: list[np.ndarray] = []
    held_lists: list[list[np.ndarray]] = []
    for root in data_roots:
        tr, he = load_corpus(root, channels, sample_rate)
        train += tr
        held_lists.append(he)
    for root in real_roots:
        rng = np.random.default_rng(seed)
        spans = random_spans(load_mixtures(root, split="train"), real_spans, real_span_seconds, rng,
                             sample_rate, channels)
        train += [np.clip(s, -1, 1).astype(np.float16) for s in spans]
        spans = random_spans(load_mixtures(root, split="test"), held_spans, held_seconds,
                             np.random.default_rng(seed + 1), sample_rate, channels)
        held_lists.append([np.clip(s, -1, 1).astype(np.float16) for s in spans])
    if not train:
        raise DatasetError("no training audio: give at least one --data or --real folder")
    held = [clip for group in zip(*held_lists) for clip in group] if held_lists else []
    held += [c for lst in held_lists for c in lst[min(len(x) for x in held_lists):]]
    return train, held


class CropStream(torch.utils.data.IterableDataset):
    """Endless random crops ``float32 [channels, crop]`` (crop a multiple of 4096 samples) from RAM clips;
    crops quieter than ``silence_dbfs`` RMS are redrawn except with probability ``keep_silent_prob``."""

    def __init__(self, clips: list[np.ndarray], crop: int, seed: int, silence_dbfs: float,
                 keep_silent_prob: float):
        super().__init__()
        self.clips, self.crop, self.seed = clips, crop, seed
        self.floor = 10 ** (silence_dbfs / 20)
        self.keep_silent_prob = keep_silent_prob
        self.weights = np.array([max(c.shape[1], 1) for c in clips], dtype=np.float64)
        self.weights /= self.weights.sum()

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        while True:
            for _ in range(10):
                clip = self.clips[rng.choice(len(self.clips), p=self.weights)]
                n = clip.shape[1]
                start = int(rng.integers(0, max(1, n - self.crop + 1)))
                x = clip[:, start: start + self.crop].astype(np.float32)
                if x.shape[1] < self.crop:
                    x = np.pad(x, ((0, 0), (0, self.crop - x.shape[1])))
                if np.sqrt(np.mean(x**2)) >= self.floor or rng.random() < self.keep_silent_prob:
                    break
            yield torch.from_numpy(x)


def held_out_batch(held: list[np.ndarray], clips: int, seconds: float, spf: int,
                   sample_rate: int = 48_000) -> torch.Tensor | None:
    """Deterministic held-out clips ``[K, C, n]``: the loudest ``seconds`` window of up to ``clips`` clips."""
    if not held:
        return None
    n = max(spf, int(seconds * sample_rate) // spf * spf)
    out = []
    for clip in held[:clips]:
        x = clip.astype(np.float32)
        if x.shape[1] < n:
            x = np.pad(x, ((0, 0), (0, n - x.shape[1])))
        hops = range(0, x.shape[1] - n + 1, n // 2)
        best = max(hops, key=lambda s: float(np.mean(x[:, s: s + n] ** 2)))
        out.append(torch.from_numpy(x[:, best: best + n]))
    return torch.stack(out)
