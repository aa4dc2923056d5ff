"""Training pairs: (context mix, target stem, CLAP reference clip) cut from multitrack songs.

The recipe (that of Diff-A-Riff and Improved Diff-A-Riff):

* pick a song, then one of its **non-vocal** stems as the target, and a window of
  ``window_seconds`` (``N = round(window_seconds * sample_rate)`` samples) in which the target is not
  silent (RMS of the target window above ``silence_threshold_db`` dBFS); silent windows are skipped
  and another song / target / window is drawn, at most ``max_tries`` times;
* the context is the sum of a random subset of the song's *other* stems over the same window: each
  other stem (vocals included) enters independently with probability ``context_probability`` (0.5),
  so the empty subset occurs too (probability ``0.5 ** k`` for ``k`` other stems) and the model also
  learns context-free generation;
* the CLAP reference is a ``reference_seconds`` clip of the **same target stem at another
  position** that keeps at least ``min_reference_gap_seconds`` away from the target window (it never
  overlaps it) and is itself non-silent. Songs shorter than ``window + reference + gap`` cannot
  provide such a pair and are left out (listed in :attr:`PairSampler.skipped_songs`); lower
  ``reference_seconds`` to keep them.

Item ``i`` of :class:`PairSampler` / :class:`PairDataset` is a deterministic function of
``(seed, i)`` only (a numpy generator seeded with both), so any number of DataLoader workers in any
order yields the same items. Audio is read span by span (only the window and the reference), and
song durations are read once from the file headers at construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, DatasetError
from .songs import Song

#: Attempts made to find a non-silent reference clip for a given target window before redrawing.
_REFERENCE_TRIES = 8


@dataclass
class PairConfig:
    """How pairs are cut.

    Attributes:
        window_seconds: length of the context / target window (seconds).
        sample_rate: output sample rate (Hz).
        channels: output channels, 1 or 2.
        silence_threshold_db: a target window (or reference clip) whose RMS over all its samples is
            at or below this level in dBFS is "silent". -50 dBFS sits far below any played part (our
            rendered GM stems are at -20..-35 dBFS RMS over a 10-s window) and above reverb tails
            and noise floors; a window with a single note usually passes.
        reference_seconds: length of the CLAP reference clip (seconds); None = ``window_seconds``.
        context_probability: chance that each non-target stem joins the context.
        min_reference_gap_seconds: minimum distance between the target window and the reference.
        max_tries: draws (song, target, window) before giving up on an item with a DatasetError.
    """

    window_seconds: float = 10.0
    sample_rate: int = 48_000
    channels: int = 2
    silence_threshold_db: float = -50.0
    reference_seconds: float | None = None
    context_probability: float = 0.5
    min_reference_gap_seconds: float = 0.0
    max_tries: int = 64

    def __post_init__(self) -> None:
        if not self.window_seconds > 0:
            raise ConfigError(f"window_seconds must be positive, got {self.window_seconds}")
        if self.channels not in (1, 2):
            raise ConfigError(f"channels must be 1 or 2, got {self.channels}")
        if int(self.sample_rate) <= 0:
            raise ConfigError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.reference_seconds is not None and not self.reference_seconds > 0:
            raise ConfigError(f"reference_seconds must be positive, got {self.reference_seconds}")
        if not 0.0 <= self.context_probability <= 1.0:
            raise ConfigError(f"context_probability must be in [0, 1], got {self.context_probability}")
        if self.min_reference_gap_seconds < 0:
            raise ConfigError(f"min_reference_gap_seconds must be >= 0, got {self.min_reference_gap_seconds}")
        if self.max_tries < 1:
            raise ConfigError(f"max_tries must be >= 1, got {self.max_tries}")

    @property
    def window_samples(self) -> int:
        """N, samples per window."""
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def reference_samples(self) -> int:
        """Samples per reference clip."""
        seconds = self.window_seconds if self.reference_seconds is None else self.reference_seconds
        return int(round(seconds * self.sample_rate))

    @property
    def gap_samples(self) -> int:
        """Minimum gap between target window and reference, in samples."""
        return int(round(self.min_reference_gap_seconds * self.sample_rate))


def rms_db(audio: np.ndarray) -> float:
    """RMS level of ``audio`` (any shape) in dBFS; -inf for digital silence."""
    arr = np.asarray(audio, dtype=np.float32).ravel()
    rms = math.sqrt(max(float(np.dot(arr, arr)), 0.0) / arr.size) if arr.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def _intervals_sample(rng: np.random.Generator, intervals: list[tuple[int, int]]) -> int | None:
    """A uniform integer from the union of inclusive ``[lo, hi]`` intervals; None when all empty."""
    spans = [(lo, hi) for lo, hi in intervals if hi >= lo]
    total = sum(hi - lo + 1 for lo, hi in spans)
    if total == 0:
        return None
    k = int(rng.integers(total))
    for lo, hi in spans:
        if k <= hi - lo:
            return lo + k
        k -= hi - lo + 1
    raise AssertionError("unreachable")


class PairSampler:
    """Deterministic pair maker over ``songs``: :meth:`pair` ``(i)`` depends only on ``(seed, i)``.

    Args:
        songs: multitrack songs (see :mod:`diffariff.data.songs`; read by :mod:`diffariff.data.sources`).
        config: :class:`PairConfig`.
        seed: integer seed.

    Raises DatasetError when no song has a non-vocal stem and is long enough for a window plus a
    non-overlapping reference.
    """

    def __init__(self, songs: Sequence[Song], config: PairConfig | None = None, seed: int = 0):
        self.config = config or PairConfig()
        self.seed = int(seed)
        cfg = self.config
        need = cfg.window_samples + cfg.reference_samples + cfg.gap_samples
        self.songs: list[Song] = []
        self.song_samples: list[int] = []
        self.targets: list[list[str]] = []
        self.skipped_songs: list[str] = []
        for song in songs:
            n = int(math.floor(song.duration_seconds() * cfg.sample_rate))
            targets = song.target_stems()
            if n < need or not targets:
                self.skipped_songs.append(song.name)
                continue
            self.songs.append(song)
            self.song_samples.append(n)
            self.targets.append(targets)
        if not self.songs:
            raise DatasetError(
                f"none of {len(songs)} songs can give a pair: each needs a non-vocal stem and at least "
                f"{need / cfg.sample_rate:.1f} s (window + reference + gap)"
            )

    def rng(self, i: int) -> np.random.Generator:
        """The generator of item ``i``: seeded by ``(seed, i)`` only."""
        return np.random.default_rng([self.seed, int(i)])

    def pair(self, i: int) -> dict:
        """Item ``i``: a random song / non-vocal target / non-silent window / context subset.

        Returns a dict: ``context``, ``target`` float32 tensors ``[C, N]``; ``reference`` ``[C, Nref]``;
        ``song``, ``target_stem``, ``target_role``, ``target_instrument``, ``target_family`` (str),
        ``target_tags`` (list[str]), ``context_stems`` (list[str]), ``start``, ``reference_start``
        (samples at ``sample_rate``), ``index`` (i).
        """
        rng = self.rng(i)
        for _ in range(self.config.max_tries):
            k = int(rng.integers(len(self.songs)))
            stem = self.targets[k][int(rng.integers(len(self.targets[k])))]
            item = self._attempt(rng, k, stem, full_context=False)
            if item is not None:
                item["index"] = int(i)
                return item
        raise DatasetError(
            f"no non-silent target window found for item {i} after {self.config.max_tries} tries over "
            f"{len(self.songs)} songs (silence threshold {self.config.silence_threshold_db} dBFS)"
        )

    def _attempt(self, rng: np.random.Generator, k: int, stem: str, full_context: bool) -> dict | None:
        """One draw of window + reference for target ``stem`` of song ``k``; None if silent."""
        cfg = self.config
        song, total = self.songs[k], self.song_samples[k]
        n, nref, gap = cfg.window_samples, cfg.reference_samples, cfg.gap_samples
        # Window starts that leave room for a reference before or after it.
        start = _intervals_sample(rng, [(nref + gap, total - n), (0, total - n - gap - nref)])
        if start is None:
            return None
        target = self._load(song, stem, start, n)
        if rms_db(target) <= cfg.silence_threshold_db:
            return None
        ref_ranges = [(0, start - gap - nref), (start + n + gap, total - nref)]
        reference = ref_start = None
        for _ in range(_REFERENCE_TRIES):
            ref_start = _intervals_sample(rng, ref_ranges)
            clip = self._load(song, stem, ref_start, nref)
            if rms_db(clip) > cfg.silence_threshold_db:
                reference = clip
                break
        if reference is None:
            return None
        others = [name for name in song.stems if name != stem]
        if full_context:
            chosen = others
        else:
            draws = rng.random(len(others))
            chosen = [name for name, u in zip(others, draws) if u < cfg.context_probability]
        context = song.load_mix(chosen, cfg.sample_rate, cfg.channels, start / cfg.sample_rate, n / cfg.sample_rate)
        s = song.stems[stem]
        return {
            "context": torch.from_numpy(context),
            "target": torch.from_numpy(target),
            "reference": torch.from_numpy(reference),
            "song": song.name,
            "target_stem": stem,
            "target_role": s.role,
            "target_instrument": s.instrument,
            "target_family": s.family,
            "target_tags": list(s.tags),
            "context_stems": chosen,
            "start": int(start),
            "reference_start": int(ref_start),
        }

    def _load(self, song: Song, stem: str, start: int, length: int) -> np.ndarray:
        sr = self.config.sample_rate
        return song.load_stem(stem, sr, self.config.channels, start / sr, length / sr)


class PairDataset(torch.utils.data.Dataset):
    """Map-style dataset of ``length`` pairs; item ``i`` is :meth:`PairSampler.pair` ``(i)``.

    Safe with any number of DataLoader workers (no shared random state). Batch with
    :func:`collate_pairs` (metadata lists of different lengths do not stack).
    """

    def __init__(self, songs: Sequence[Song], config: PairConfig | None = None, length: int = 10_000,
                 seed: int = 0):
        if length < 1:
            raise ConfigError(f"dataset length must be >= 1, got {length}")
        self.sampler = PairSampler(songs, config, seed)
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        if not -self.length <= i < self.length:
            raise IndexError(f"pair index {i} out of range for {self.length} pairs")
        return self.sampler.pair(i % self.length)


def collate_pairs(items: list[dict]) -> dict:
    """Batch pair items: tensors stacked to ``[B, C, N]``; every other field becomes a list."""
    out: dict = {}
    for key in items[0]:
        values = [item[key] for item in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out


#: How held-out pairs pick their target stem (:func:`evaluation_pairs`): every song's stems in turn from
#: its first (``"first"``: with fewer pairs than twice the songs, mostly drums and bass in the built-in
#: corpus) or pair j from song j's j-th stem (``"cycle"``, so that the targets span the roles).
STEM_DRAWS = ("first", "cycle")


def check_stem_draw(draw: str) -> str:
    """``draw`` if it is one of :data:`STEM_DRAWS`; otherwise a :class:`ConfigError` naming ``--stem-draw``."""
    if draw not in STEM_DRAWS:
        raise ConfigError(f"--stem-draw must be one of {', '.join(STEM_DRAWS)}, got '{draw}'")
    return draw


def evaluation_pairs(songs: Sequence[Song], config: PairConfig | None = None, n: int = 100, seed: int = 0,
                     *, full_context: bool = True, stem_draw: str = "first") -> list[dict]:
    """A fixed, deterministic held-out set of ``n`` pairs spread evenly over songs and targets.

    Pair ``j`` takes song ``j % S`` (songs that can give pairs, in the given order) and that song's
    non-vocal stems in turn, from its first (``stem_draw="first"``, the generation protocol's default) or
    from its ``j``-th (``"cycle"``: with ``n`` below ``2 S`` the pairs' targets still span the songs' roles
    instead of being every song's first stems). Window, reference and (when
    ``full_context=False``) the context subset are drawn from a generator seeded by ``(seed, j)``.
    With ``full_context=True`` (the evaluation protocol's default) the context is the mix of all other
    stems. A target without a non-silent window within ``max_tries`` draws gives way to the song's next target, then to the next songs.
    """
    cycle = check_stem_draw(stem_draw) == "cycle"
    sampler = PairSampler(songs, config, seed)
    cfg = sampler.config
    count = len(sampler.songs)
    items = []
    for j in range(int(n)):
        rng = sampler.rng(j)
        k0 = j % count
        item = None
        for dk in range(count):
            k = (k0 + dk) % count
            targets = sampler.targets[k]
            for dt in range(len(targets)):
                stem = targets[(j // count + (j if cycle else 0) + dt) % len(targets)]
                for _ in range(cfg.max_tries):
                    item = sampler._attempt(rng, k, stem, full_context)
                    if item is not None:
                        break
                if item is not None:
                    break
            if item is not None:
                break
        if item is None:
            raise DatasetError(f"no non-silent target window found in any of {count} songs for evaluation")
        item["index"] = j
        items.append(item)
    return items
