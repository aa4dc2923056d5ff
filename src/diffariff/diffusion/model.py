"""The latent diffusion model: a network (DiT or 1-D U-Net) inside an EDM or consistency
preconditioner, the codec-latent normalisation it was trained with, and sampling with dual
classifier-free guidance and the editing hooks of :mod:`.edits`.

Units. The codec produces latents ``z`` [B, 64, T] (T latent frames, 4096 samples each at 48 kHz).
The diffusion model works on normalised latents ``x = (z - latent_mean) / latent_std`` (per channel
or one scalar each), whose element std is ``sigma_data`` (measured on the training cache). The
context latents (codec latents of the context mix) are normalised the same way. Everything public
that takes or returns latents says which of the two it uses: :meth:`LatentDiffusion.sample` takes
and returns codec units; :meth:`LatentDiffusion.denoise` works in normalised units.

Context chroma (``config.context_chroma``): the context stream can also carry the context's pitch
content, the 12-bin chroma of :func:`diffariff.data.context_chroma.context_chroma` ([B, 12, T] in [0, 1],
one column per latent frame). :meth:`LatentDiffusion.context_input` builds the network's context input:
the normalised context latents, then ``CHROMA_SCALE * (chroma - 0.5)`` on 12 more channels. The chroma
is part of the context: dropping the context (classifier-free guidance, ``drop_context``) replaces all
of its channels, chroma included, by the network's learned null context.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import config_from_dict, load_checkpoint, load_state_into, save_checkpoint
from ..data.context_chroma import CHROMA_BINS
from ..errors import CheckpointError, ConfigError, InputError
from ..nets import build_net
from ..torchutil import seeded_generator
from .consistency import ConsistencyDenoiser
from .edits import Inpaint, LoopTie, StyleGround, loop_noise, variation_start
from .edm import EDMDenoiser, karras_sigmas
from .guidance import GuidedDenoiser, IntervalGuidance
from .samplers import get_sampler

KIND = "latent-diffusion"
MODES = ("edm", "consistency")

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Scale of the chroma channels of the context input, ``CHROMA_SCALE * (chroma - 0.5)``: the chroma of
#: synthetic-corpus context mixes (40 10-s pairs, silent frames included) has mean 0.26 and std 0.31, so
#: the channels get a std of ~0.9 (mean -0.7), comparable to the normalised latents' ``sigma_data`` (~1).
CHROMA_SCALE = 3.0


@dataclass
class LatentDiffusionConfig:
    """Everything needed to rebuild and run a latent diffusion model.

    ``net`` / ``net_config``: network kind ("dit" | "unet1d") and its config dict (``configs/dit_small.json``);
    its ``latent_channels`` / ``context_channels`` / ``clap_dim`` are filled from this config when absent.
    ``mode``: "edm" (Heun sampling, ``steps`` 30 by default) or "consistency" (``consistency_steps`` 5).
    ``sigma_data``: element std of the normalised training latents. ``latent_mean`` / ``latent_std``:
    codec-latent normalisation, one value (broadcast) or ``latent_channels`` values.
    ``train_frames``: training window length in latent frames (117 ~ 10 s at 11.72 Hz).
    ``codec_id`` / ``clap_id``: :func:`model_identity` of the codec and CLAP checkpoints used for the
    training cache, so that a bundle can refuse a mismatched codec or CLAP.
    ``context_chroma``: the context stream also carries the context's 12-bin chroma (module doc), so the
    network's ``context_channels`` is ``latent_channels + 12``; sampling needs the chroma with the context.
    """

    net: str = "dit"
    net_config: dict = field(default_factory=dict)
    mode: str = "edm"
    sigma_data: float = 1.0
    latent_channels: int = 64
    clap_dim: int = 512
    latent_mean: tuple[float, ...] = (0.0,)
    latent_std: tuple[float, ...] = (0.06,)
    train_frames: int = 117
    codec_id: str = ""
    clap_id: str = ""
    context_chroma: bool = False
    # EDM training noise distribution (log-normal)
    p_mean: float = -1.2
    p_std: float = 1.2
    # sampling schedule and defaults
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    sampler: str = "heun"
    steps: int = 30
    consistency_steps: int = 5
    w_ctx: float = 1.25
    w_clap: float = 1.25
    # guidance strengths (context, CLAP) baked in by guided consistency distillation; (1, 1) = none
    distilled_guidance: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.distilled_guidance) != 2 or min(self.distilled_guidance) <= 0:
            raise ConfigError(f"distilled_guidance must be two strengths > 0, got {self.distilled_guidance}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got '{self.mode}'")
        if not self.sigma_data > 0:
            raise ConfigError(f"sigma_data must be > 0, got {self.sigma_data}")
        if not self.p_std > 0:  # the spread of log(sigma) in EDM training (`train diffusion --p-std`)
            raise ConfigError(f"p_std (--p-std) must be > 0, got {self.p_std}")
        if self.latent_channels < 1 or self.clap_dim < 1 or self.train_frames < 1:
            raise ConfigError("latent_channels, clap_dim and train_frames must be >= 1")
        for name in ("latent_mean", "latent_std"):
            vals = tuple(float(v) for v in getattr(self, name))
            if len(vals) not in (1, self.latent_channels):
                raise ConfigError(f"{name} needs 1 or {self.latent_channels} values, got {len(vals)}")
            setattr(self, name, vals)
        if min(self.latent_std) <= 0:
            raise ConfigError("latent_std values must be > 0")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.steps < 1 or self.consistency_steps < 1:
            raise ConfigError("steps and consistency_steps must be >= 1")
        for key, want in (("latent_channels", self.latent_channels), ("context_channels", self.context_channels),
                          ("clap_dim", self.clap_dim)):
            have = self.net_config.get(key, want)
            if int(have) != want:
                raise ConfigError(f"net_config.{key} = {have} disagrees with the model's {want}")

    @property
    def context_channels(self) -> int:
        """Channels of the network's context input: the latents, and the chroma when ``context_chroma``."""
        return self.latent_channels + (CHROMA_BINS if self.context_chroma else 0)

    def full_net_config(self) -> dict:
        """``net_config`` with the channel / CLAP sizes filled in."""
        return {**self.net_config, "latent_channels": self.latent_channels,
                "context_channels": self.context_channels, "clap_dim": self.clap_dim}

    def default_sampling(self) -> tuple[str, int]:
        """(sampler name, steps) for this model's mode."""
        return ("consistency", self.consistency_steps) if self.mode == "consistency" else (self.sampler, self.steps)


def model_identity(path: str | os.PathLike) -> str:
    """A short identity of a diffariff checkpoint (codec, CLAP, ...): sha256 over its kind, its config
    and its weights rounded to float16 (signed zeros folded), so an fp32 checkpoint and its fp16 export
    share one identity. Returns ``"<kind>:<16 hex digits>"``.

    For a codec it is the identity of its **latent space**: the decoder side (config fields
    :data:`~diffariff.codec.config.DECODER_ONLY_FIELDS`, weights under ``upsampler.`` / ``unet.``) is
    left out, so a codec whose decoder was fine-tuned with a frozen encoder (``diffariff train codec
    --freeze-encoder``) keeps serving the latent models trained on its latents. Config fields added later
    (:data:`~diffariff.codec.config.LATER_FIELDS_OLD_VALUES`) count only where they change the codec."""
    from ..codec.config import DECODER_ONLY_FIELDS, DECODER_PREFIXES, LATER_FIELDS_OLD_VALUES
    from ..codec.synth_codec import DECODER_ONLY_FIELDS as SYNTH_DECODER_FIELDS
    from ..codec.synth_codec import DECODER_PREFIXES as SYNTH_DECODER_PREFIXES
    from ..codec.synth_codec import KIND as SYNTH_KIND

    ck = load_checkpoint(path, keep_dtype=True)
    config, names = dict(ck.config), sorted(ck.tensors)
    if ck.kind == SYNTH_KIND:
        config = {k: v for k, v in config.items() if k not in SYNTH_DECODER_FIELDS}
        names = [n for n in names if not n.startswith(SYNTH_DECODER_PREFIXES)]
    if ck.kind == "codec":
        config = {k: v for k, v in config.items() if k not in DECODER_ONLY_FIELDS
                  and not (k in LATER_FIELDS_OLD_VALUES and v == LATER_FIELDS_OLD_VALUES[k])}
        names = [n for n in names if not n.startswith(DECODER_PREFIXES)]
    h = hashlib.sha256()
    h.update(ck.kind.encode())
    h.update(json.dumps(config, sort_keys=True).encode())
    for name in names:
        t = ck.tensors[name]
        h.update(name.encode())
        t = t.to(torch.float16) + 0.0 if t.is_floating_point() else t  # + 0.0 folds -0.0 into 0.0
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return f"{ck.kind}:{h.hexdigest()[:16]}"


class LatentDiffusion(nn.Module):
    """Network + preconditioner + latent normalisation (see the module doc for units).

    State dict keys: ``denoiser.net.*`` (the network's weights only; the normalisation lives in the config).
    """

    def __init__(self, config: LatentDiffusionConfig):
        super().__init__()
        self.config = config
        net = build_net(config.net, config.full_net_config())
        if config.mode == "edm":
            self.denoiser: nn.Module = EDMDenoiser(net, config.sigma_data, config.p_mean, config.p_std)
        else:
            self.denoiser = ConsistencyDenoiser(net, config.sigma_data, config.sigma_min)
        shape = (1, -1, 1)
        self.register_buffer("latent_mean", torch.tensor(config.latent_mean).reshape(shape), persistent=False)
        self.register_buffer("latent_std", torch.tensor(config.latent_std).reshape(shape), persistent=False)

    @property
    def net(self) -> nn.Module:
        return self.denoiser.net

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------------------- normalisation
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Codec latents [B, C, T] -> normalised latents (z - mean) / std, same shape."""
        self._check_latents(z, "latents")
        return (z.float() - self.latent_mean) / self.latent_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised latents [B, C, T] -> codec latents x * std + mean."""
        self._check_latents(x, "latents")
        return x * self.latent_std + self.latent_mean

    def _check_latents(self, z: torch.Tensor, what: str) -> None:
        if not torch.is_tensor(z) or z.ndim != 3 or z.shape[1] != self.config.latent_channels or z.shape[2] < 1:
            shape = list(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise InputError(f"{what} must be shaped [B, {self.config.latent_channels}, T>=1], got {shape}")

    def context_input(self, context_latents: torch.Tensor, context_chroma: torch.Tensor | None = None) -> torch.Tensor:
        """The network's context input [B, ``config.context_channels``, T] from the context mix's codec
        latents ``context_latents`` [B, C, T] and, for a model with ``config.context_chroma``, its chroma
        ``context_chroma`` [B or 1, 12, T] in [0, 1] (:func:`~diffariff.data.context_chroma.context_chroma`):
        the normalised latents, then ``CHROMA_SCALE * (chroma - 0.5)``. A batch of 1 on either side is
        broadcast to the other's. InputError when a chroma model gets no chroma, a model without the
        option gets one, or the shapes disagree."""
        ctx = self.normalize(context_latents)
        if not self.config.context_chroma:
            if context_chroma is not None:
                raise InputError("context chroma was given, but this model was trained without it "
                                 "(config.context_chroma is false): pass the context latents alone")
            return ctx
        if context_chroma is None:
            raise InputError("this model was trained with context chroma (config.context_chroma): give the "
                             "context's chroma [B, 12, T] (diffariff.data.context_chroma) with its latents")
        c = context_chroma
        if not torch.is_tensor(c) or c.ndim != 3 or c.shape[1] != CHROMA_BINS or c.shape[2] != ctx.shape[2]:
            shape = list(c.shape) if torch.is_tensor(c) else type(c).__name__
            raise InputError(f"context chroma must be shaped [B, {CHROMA_BINS}, {ctx.shape[2]}] (the context "
                             f"latents' frames), got {shape}")
        if c.shape[0] != ctx.shape[0] and 1 not in (c.shape[0], ctx.shape[0]):
            raise InputError(f"context chroma has batch {c.shape[0]}, the context latents {ctx.shape[0]}")
        b = max(c.shape[0], ctx.shape[0])
        chroma = CHROMA_SCALE * (c.to(ctx.device, torch.float32) - 0.5)
        return torch.cat([ctx.expand(b, -1, -1), chroma.expand(b, -1, -1)], dim=1)

    # ----------------------------------------------------------------------------------- denoising
    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float, context: torch.Tensor | None = None,
                clap: torch.Tensor | None = None, drop_context: torch.Tensor | None = None,
                drop_clap: torch.Tensor | None = None) -> torch.Tensor:
        """D(x, sigma | context, clap) in normalised units: ``x`` [B, C, T], ``sigma`` [B] or scalar,
        ``context`` [B, Cc, T] the context input of :meth:`context_input` (normalised latents, and the
        scaled chroma for a ``context_chroma`` model), ``clap`` [B, D] embedding, ``drop_*`` [B] bool
        masks (True = that sample's condition is dropped; a dropped context loses its chroma with it).
        Returns the x0 estimate [B, C, T]."""
        return self.denoiser(x, sigma, context=context, clap=clap, drop_context=drop_context, drop_clap=drop_clap)

    forward = denoise

    # ------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        context_latents: torch.Tensor | None = None,
        clap: torch.Tensor | None = None,
        *,
        frames: int | None = None,
        batch: int | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        cfg_context: float | None = None,
        cfg_clap: float | None = None,
        rescale_phi: float = 0.0,
        guidance_interval: tuple[float, float] | None = None,
        seed: int | None = None,
        callback: Callable[[dict], None] | None = None,
        init: torch.Tensor | None = None,
        strength: float | None = None,
        inpaint_latents: torch.Tensor | None = None,
        inpaint_mask: torch.Tensor | None = None,
        loop: int | None = None,
        loop_strength: float = 0.5,
        style: torch.Tensor | None = None,
        style_strength: float = 0.5,
        wrappers: Sequence[Callable[[Denoise], Denoise]] = (),
        context_chroma: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generate target latents in **codec units** [B, C, T].

        ``context_latents`` [B or 1, C, T] codec latents of the context mix (None: no context);
        ``context_chroma`` [B or 1, 12, T] its chroma (:func:`~diffariff.data.context_chroma.context_chroma`),
        required with a context by a ``config.context_chroma`` model and refused by others (InputError);
        ``clap`` [B or 1, D] CLAP embedding (None: no CLAP condition). ``frames`` T (default: the
        context's length, else ``train_frames``); ``batch`` B (default: from the conditions, else 1).
        ``steps`` / ``sampler``: default from the config (the mode's sampler and steps: the default bundle's EDM DPM++ 2M 25, consistency 5).
        ``cfg_context`` / ``cfg_clap``: guidance strengths (nested CFG, :mod:`.guidance`; for a model distilled
        with guidance g (``config.distilled_guidance``) the network's passes are combined with w / g,
        so w = g takes a single pass: exact in the linear picture, where the student's passes are the
        teacher's guided ones, D(0,0) + g (D(c) - D(0,0)) per condition); ``rescale_phi``
        rescaled CFG; ``guidance_interval`` (lo, hi): guide only for noise levels in (lo, hi], strengths
        1 / 1 elsewhere (:class:`~.guidance.IntervalGuidance`; None: every level). ``seed``: same seed,
        same inputs -> same output. ``callback(dict)`` per step (``x`` / ``denoised`` in normalised units).

        Edits (codec units, all [B or 1, C, T]): ``init`` + ``strength`` in (0, 1]
        (variation of an existing latent); ``inpaint_latents`` + ``inpaint_mask`` (broadcastable,
        1 = keep); ``loop`` repetitions tied for the first ``loop_strength`` of the steps;
        ``style`` (any length) grounding with ``style_strength``. ``wrappers``: further
        ``f(denoise) -> denoise`` hooks applied innermost-first after the built-in ones.
        """
        cfg = self.config
        default_sampler, default_steps = cfg.default_sampling()
        sampler = sampler or default_sampler
        steps = int(steps if steps is not None else default_steps)
        w_ctx = cfg.w_ctx if cfg_context is None else float(cfg_context)
        w_clap = cfg.w_clap if cfg_clap is None else float(cfg_clap)
        sample_fn = get_sampler(sampler)
        device = self.latent_mean.device
        ctx = None
        if context_latents is not None:
            chroma = None if context_chroma is None else context_chroma.to(device)
            ctx = self.context_input(context_latents.to(device), chroma)
        elif context_chroma is not None:
            raise InputError("context_chroma was given without context_latents (the chroma is part of the context)")
        if clap is not None:
            if clap.ndim != 2 or clap.shape[1] != cfg.clap_dim:
                raise InputError(f"clap embedding must be shaped [B, {cfg.clap_dim}], got {list(clap.shape)}")
            clap = clap.to(device).float()
        sizes = {t.shape[0] for t in (ctx, clap, init, inpaint_latents) if t is not None and t.shape[0] > 1}
        if batch is not None:
            sizes.add(int(batch))
        if len(sizes) > 1:
            raise InputError(f"inconsistent batch sizes in the sampling inputs: {sorted(sizes)}")
        b = sizes.pop() if sizes else 1
        if frames is None:
            ref = next((t for t in (ctx, init, inpaint_latents) if t is not None), None)
            frames = ref.shape[-1] if ref is not None else cfg.train_frames
        frames = int(frames)
        if frames < 1:
            raise InputError(f"frames must be >= 1, got {frames}")
        if ctx is not None and ctx.shape[-1] != frames:
            raise InputError(f"context has {ctx.shape[-1]} latent frames but {frames} were requested")
        if ctx is not None and ctx.shape[0] != b:
            ctx = ctx.expand(b, -1, -1)
        if clap is not None and clap.shape[0] != b:
            clap = clap.expand(b, -1)

        gen = seeded_generator(seed, device)
        shape = (b, cfg.latent_channels, frames)
        # a guidance-distilled network already answers with strengths g: ask it for w / g (w = g: one pass)
        g_ctx, g_clap = cfg.distilled_guidance
        denoise: Denoise = GuidedDenoiser(self.denoise, ctx, clap, w_ctx / g_ctx, w_clap / g_clap, rescale_phi)
        if guidance_interval is not None:
            lo, hi = guidance_interval
            denoise = IntervalGuidance(denoise, GuidedDenoiser(self.denoise, ctx, clap, 1 / g_ctx, 1 / g_clap),
                                       lo, hi)
        if style is not None:
            denoise = StyleGround(denoise, self.normalize(style.to(device)), style_strength)

        if init is not None:
            if strength is None:
                raise InputError("init needs a variation strength in (0, 1]")
            known = self._fit(self.normalize(init.to(device)), shape, "init")
            x, sigmas = variation_start(known, strength, steps, gen, cfg.sigma_min, cfg.sigma_max, cfg.rho)
        else:
            sigmas = karras_sigmas(steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, device=device)
            x = torch.randn(shape, generator=gen, device=device) * sigmas[0]
        if loop is not None and loop > 1:
            if init is None:
                x = loop_noise(x, int(loop))
            denoise = LoopTie.for_schedule(denoise, int(loop), loop_strength, sigmas)
        for wrap in wrappers:
            denoise = wrap(denoise)
        inpaint = None
        if inpaint_latents is not None:
            if inpaint_mask is None:
                raise InputError("inpaint_latents needs an inpaint_mask (1 = keep)")
            known = self._fit(self.normalize(inpaint_latents.to(device)), shape, "inpaint_latents")
            inpaint = Inpaint(denoise, known, inpaint_mask.to(device), gen)
            denoise = inpaint

        kwargs = {"sigma_min": cfg.sigma_min} if sampler == "consistency" else {}
        out = sample_fn(denoise, x, sigmas, callback=callback, generator=gen, **kwargs)
        if inpaint is not None:
            out = inpaint.finalize(out)
        return self.denormalize(out)

    @staticmethod
    def _fit(t: torch.Tensor, shape: tuple[int, int, int], what: str) -> torch.Tensor:
        if t.shape[1:] != shape[1:]:
            raise InputError(f"{what} must be shaped [B, {shape[1]}, {shape[2]}], got {list(t.shape)}")
        return t.expand(shape[0], -1, -1) if t.shape[0] != shape[0] else t

    # ---------------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, *, fp16: bool = False, extra: dict | None = None) -> Path:
        """Write a ``kind="latent-diffusion"`` safetensors checkpoint (config inside, atomically);
        ``fp16=True`` halves the file for shipping."""
        info = {"parameters": self.num_parameters(), **(extra or {})}
        return save_checkpoint(path, self.state_dict(), kind=KIND, config=self.config, extra=info,
                               dtype=torch.float16 if fp16 else None)

    @classmethod
    def load(cls, path: str | os.PathLike, *, codec_id: str | None = None, clap_id: str | None = None) -> LatentDiffusion:
        """Rebuild a model saved by :meth:`save` (float32, eval mode). When ``codec_id`` / ``clap_id``
        are given and the model records a different one, raise CheckpointError."""
        ck = load_checkpoint(path, kind=KIND)
        config = config_from_dict(LatentDiffusionConfig, ck.config)
        for name, want, have in (("codec", codec_id, config.codec_id), ("CLAP", clap_id, config.clap_id)):
            if want and have and want != have:
                raise CheckpointError(f"{path}: trained with {name} {have}, but {want} was given")
        model = cls(config)
        load_state_into(model, ck.tensors, path)
        return model.eval()
