"""Gaps in generated stems: spans where the stem falls silent while its context plays on, found in the
latents and sampled again (mixed into the :class:`~diffariff.pipeline.Accompanist`).

Windowed generation of a long context can leave a few seconds of near-digital silence inside a stem that
plays everywhere else (e.g. 73-76 s of a 3-minute soundtrack at -120 dBFS against a context at -18 dBFS,
DPM++ 2M, seed 0). A rest of a part is quieter than the part's usual level by ~10-20 dB; such a hole is
40 dB and more below it. The stem's levels are read from the codec without rendering audio:
:func:`frame_levels_db` sums the powers of the synth codec's control rows (oscillator amplitudes and noise
band gains) per latent frame (codecs without controls: the RMS of the decoded frame). The context's come
from its audio (:func:`audio_frame_levels_db`, a block at a time): no decoder pass for the context.

:func:`find_gaps` marks the frames where the context is audible (within :data:`CONTEXT_RANGE_DB` of its
loudest frame) and the stem is :data:`GAP_DB` or more below its own median over those frames, and keeps
runs of at least :data:`MIN_GAP_SECONDS`. :meth:`GapFilling._fill_gaps` inpaints each gap in a crop of
one generation window around it (everything outside the gap kept exactly) with a new seed, up to
:data:`ATTEMPTS` times, and keeps a new take only when fewer of the gap's frames stay silent. Outside the
gaps the latents are unchanged, so a stem without gaps is bit-equal to one generated without the repair.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..audio_spool import is_spooled
from ..request import INFERENCE_PRECISIONS, GenerationRequest
from ..torchutil import inference_autocast

#: a gap: this many dB or more under the stem's median level (over the frames where the context plays)
GAP_DB = 40.0
#: the context counts as playing within this many dB of its loudest frame
CONTEXT_RANGE_DB = 40.0
#: shortest gap repaired (seconds): shorter silences are rests
MIN_GAP_SECONDS = 1.5
#: new takes tried per gap
ATTEMPTS = 2
#: frames of the stem around a gap that are sampled again with it (each side)
GAP_PAD_FRAMES = 2
#: level of an all-zero frame (dB)
FLOOR_DB = -160.0


@torch.no_grad()
def frame_levels_db(codec, latents: torch.Tensor, chunk_frames: int = 256) -> np.ndarray:
    """Latents ``[B, D, T]`` (codec units) -> level per latent frame ``[B, T]`` in dB (power of the synth
    codec's control rows averaged over the frame's control frames; other codecs: mean square of the
    decoded audio per frame). A level proxy for comparing frames of the same codec, not dBFS."""
    b, _, t = latents.shape
    out = np.full((b, t), FLOOR_DB)
    controls = getattr(codec, "decode_controls", None)
    for a in range(0, t, chunk_frames):
        z = latents[..., a:a + chunk_frames].float()
        n = z.shape[-1]
        if controls is not None:
            power = (2.0 * controls(z)).exp().sum(dim=1)  # [B, F]: natural-log levels -> power
        else:
            power = codec.decode(z).float().square().mean(dim=1)  # [B, samples]
        per = power.shape[-1] // n
        frame = power[:, : per * n].reshape(b, n, per).mean(dim=-1).double().cpu().numpy()
        out[:, a:a + n] = 10.0 * np.log10(np.maximum(frame, 10 ** (FLOOR_DB / 10)))
    return out


def audio_frame_levels_db(audio, hop: int, frames: int, block_frames: int = 256) -> np.ndarray:
    """Audio ``[C, N]`` (an array or a :class:`~diffariff.audio_spool.SpooledAudio`, read ``block_frames``
    frames at a time) -> level per frame of ``hop`` samples ``[frames]`` in dB (mean square over the
    channels and the frame's samples; frames past the end and all-zero frames at :data:`FLOOR_DB`)."""
    spooled = is_spooled(audio)
    arr = audio if spooled else np.asarray(audio)
    out = np.full(int(frames), FLOOR_DB)
    n = arr.shape[-1]
    for f0 in range(0, int(frames), int(block_frames)):
        a = f0 * hop
        if a >= n:
            break
        b = min(n, (f0 + block_frames) * hop, frames * hop)
        x = np.asarray(arr.read(a, b) if spooled else arr[:, a:b], dtype=np.float64)
        count = -(-(b - a) // hop)
        padded = np.zeros((x.shape[0], count * hop))
        padded[:, : b - a] = x
        power = np.square(padded).reshape(x.shape[0], count, hop).mean(axis=(0, 2))
        power[-1] *= hop / (b - a - (count - 1) * hop)  # a short last frame: its own samples' mean
        out[f0:f0 + count] = 10.0 * np.log10(np.maximum(power, 10 ** (FLOOR_DB / 10)))
    return out


def find_gaps(stem_db: np.ndarray, context_db: np.ndarray, min_frames: int, *, gap_db: float = GAP_DB,
              context_range_db: float = CONTEXT_RANGE_DB) -> tuple[list[tuple[int, int]], float]:
    """Gaps of one stem: runs ``(first, end)`` (latent frames, end exclusive) of at least ``min_frames``
    where the context ``context_db`` [T] plays and the stem ``stem_db`` [T] is ``gap_db`` or more below
    its median over those frames; and that threshold (dB). No gaps when the context never plays."""
    playing = context_db > context_db.max() - context_range_db
    if not playing.any():
        return [], float("-inf")
    threshold = float(np.median(stem_db[playing])) - gap_db
    low = playing & (stem_db < threshold)
    gaps, start = [], None
    for j, flag in enumerate(list(low) + [False]):
        if flag and start is None:
            start = j
        elif not flag and start is not None:
            if j - start >= min_frames:
                gaps.append((start, j))
            start = None
    return gaps, threshold


@dataclasses.dataclass(frozen=True)
class Gap:
    """A gap found in candidate ``candidate`` at ``start_s``..``end_s`` (seconds), and whether a new take
    filled it (``silent_before`` / ``silent_after``: its frames below the gap threshold)."""

    candidate: int
    start_s: float
    end_s: float
    silent_before: int
    silent_after: int

    @property
    def filled(self) -> bool:
        return self.silent_after < self.silent_before


class GapFilling:
    """Mixin: :meth:`_fill_gaps` (module doc); :attr:`last_gaps` lists the gaps of the last generation."""

    last_gaps: list[Gap] = []

    def _fill_gaps(self, z: torch.Tensor, ctx_latents: torch.Tensor, clap: torch.Tensor | None,
                   req: GenerationRequest, *, seed: int, style: torch.Tensor | None = None,
                   ctx_chroma: torch.Tensor | None = None, context_db: np.ndarray | None = None) -> torch.Tensor:
        """Latents ``z`` [n, D, T] with the gaps of each candidate sampled again against ``ctx_latents``
        [1, D, T] (and ``clap``, ``style``, ``ctx_chroma`` [1, 12, T] as in :meth:`sample_latents`); the
        generation's seed, windows and transpositions are left as they were. ``context_db`` [T]: the
        context's level per frame (:func:`audio_frame_levels_db` of its audio; None: read from
        ``ctx_latents`` through the codec, one decoder pass more)."""
        self.last_gaps = []
        fps = 1.0 / (self.samples_per_frame / 48_000)
        min_frames = max(1, int(round(MIN_GAP_SECONDS * fps)))
        t = z.shape[-1]
        if t < min_frames:
            return z
        ctx_db = frame_levels_db(self.codec, ctx_latents)[0] if context_db is None else np.asarray(context_db)
        if ctx_db.shape != (t,):
            raise ValueError(f"context_db has {ctx_db.shape} levels for {t} frames")
        stem_db = self._stem_levels(z, req)
        model, _ = self.model_for(req.sampler)
        window = self._seconds_to_frames(req.window_seconds) or self.default_window_frames(model)
        kept = (self.last_seed, self.last_windows)
        z = z.clone()
        try:
            for i in range(z.shape[0]):
                gaps, threshold = find_gaps(stem_db[i], ctx_db, min_frames)
                for a, b in gaps:
                    z[i:i + 1] = self._fill_one(z[i:i + 1], (a, b), threshold, window, ctx_latents, clap, req,
                                                seed=seed + 7001 * (i + 1) + 131 * a, style=style,
                                                ctx_chroma=ctx_chroma, candidate=i, fps=fps)
        finally:
            self.last_seed, self.last_windows = kept
        return z

    def _stem_levels(self, z: torch.Tensor, req: GenerationRequest) -> np.ndarray:
        """:func:`frame_levels_db` of latents ``z`` under the precision the decode runs at."""
        with inference_autocast(INFERENCE_PRECISIONS[req.precision], z.device):
            return frame_levels_db(self.codec, z)

    def _fill_one(self, z: torch.Tensor, gap: tuple[int, int], threshold: float, window: int,
                  ctx_latents: torch.Tensor, clap: torch.Tensor | None, req: GenerationRequest, *, seed: int,
                  style, ctx_chroma, candidate: int, fps: float) -> torch.Tensor:
        """One gap of one candidate ``z`` [1, D, T]: new takes in a window-long crop around it."""
        t = z.shape[-1]
        a, b = max(0, gap[0] - GAP_PAD_FRAMES), min(t, gap[1] + GAP_PAD_FRAMES)
        margin = max(GAP_PAD_FRAMES, (window - (b - a)) // 2)
        c0, c1 = max(0, a - margin), min(t, b + margin)
        keep = torch.ones(c1 - c0, dtype=torch.bool)
        keep[a - c0:b - c0] = False
        cond = clap if clap is None or clap.shape[0] == 1 else clap[candidate:candidate + 1]
        silent_before = gap[1] - gap[0]  # a gap is a run of frames below the threshold (find_gaps)
        best, silent = z, silent_before
        for attempt in range(ATTEMPTS):
            take = self.sample_latents(
                ctx_latents[..., c0:c1], cond, c1 - c0, dataclasses.replace(req, n=1, loop=None, progress=False),
                known=z[..., c0:c1], keep=keep, seed=seed + attempt, style=style,
                ctx_chroma=None if ctx_chroma is None else ctx_chroma[..., c0:c1])
            left = int((self._stem_levels(take[..., gap[0] - c0:gap[1] - c0], req)[0] < threshold).sum())
            if left < silent:
                best, silent = z.clone(), left
                best[..., c0:c1] = take
            if silent == 0:
                break
        self.last_gaps.append(Gap(candidate, gap[0] / fps, gap[1] / fps, silent_before, silent))
        return best


__all__ = ["ATTEMPTS", "GAP_DB", "MIN_GAP_SECONDS", "Gap", "GapFilling", "audio_frame_levels_db", "find_gaps",
           "frame_levels_db"]
