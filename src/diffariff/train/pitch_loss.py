"""A pitch-class term for latent-diffusion training, read through the pitch critic.

The EDM loss is a mean squared error over all latent channels and frames. On the synth codec's latents
the notes are a small part of that error: a stem whose oscillator levels sit a semitone off costs about
as much as one whose noise bands are slightly too loud, so a model trained on it alone learns the
context's rhythm and timbre but plays in whatever key it likes (docs/experiments.md). This term compares
what the codec's oscillators would play, per pitch class, for the denoiser's clean estimate and for the
true target, so a wrong pitch class costs what it costs a listener.

Both sides go through the frozen :class:`~diffariff.codec.pitch_critic.PitchCritic` (latents in codec
units -> log pitch-class power per latent frame). The powers are averaged over ``window`` frames (a
chord, not a note: at high noise levels the estimate is a blur of the notes that fit, and the key is what
it can know), normalised to a chroma per frame (sums to 1), and compared with a squared error summed over
the 12 classes. Frames are weighted by the target's power, so silent frames and rests count little.
"""

from __future__ import annotations

import torch
import torch.func

from ..codec.pitch_critic import PitchCritic
from ..pipeline.harmony import frame_average

#: smallest pitch-class power counted (critic units); keeps the chroma of a silent frame finite
_FLOOR = 1e-8


def smoothed_chroma(log_power: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log pitch-class power ``[B, 12, T]`` -> (chroma ``[B, 12, T]`` summing to 1 per frame, frame power
    ``[B, T]``), both after a centred moving average of the power over ``window`` frames (odd, >= 1)."""
    power = frame_average(log_power.float().clamp(max=30.0).exp(), window)
    total = power.sum(dim=1)
    return power / (total[:, None, :] + _FLOOR), total


def pitch_class_loss(critic: PitchCritic, estimate: torch.Tensor, target: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Per-sample pitch-class error ``[B]`` between a clean estimate and the target, both codec latents
    ``[B, latent_dim, T]``; the gradient flows into ``estimate`` only (the critic's weights are read detached).

    Value: sum over frames of w_t * ||chroma_est(t) - chroma_true(t)||^2 with w_t the target's share of
    its total pitch-class power in frame t (so a value of 2 is the most two disjoint chromas can differ)."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of frames >= 1, got {window}")
    with torch.no_grad():
        true_chroma, true_power = smoothed_chroma(critic(target.float()), window)
        weight = true_power / (true_power.sum(dim=1, keepdim=True) + _FLOOR)
    frozen = {name: p.detach() for name, p in critic.named_parameters()}
    est_chroma, _ = smoothed_chroma(torch.func.functional_call(critic, frozen, (estimate.float(),)), window)
    return ((est_chroma - true_chroma).pow(2).sum(dim=1) * weight).sum(dim=1)
