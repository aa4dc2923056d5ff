"""The sampling of target latents of the :class:`~diffariff.pipeline.Accompanist` (mixed into it): the
latent model, sampler, steps and seed of a request, the plan of overlapping windows of a long context
(:func:`~diffariff.diffusion.edits.plan_windows`, sampled by
:func:`~diffariff.diffusion.edits.generate_windowed`, each window inpainted against the frames already
generated), kept frames, variations, style latents, and harmony guidance
(:class:`~diffariff.pipeline.harmony.HarmonyGuide`) inside each window.

The host provides ``codec``, ``pitch_critic``, ``model_for`` and ``samples_per_frame``, and initialises
``last_windows`` and ``last_seed``, which :meth:`LatentSampling.sample_latents` and
:meth:`LatentSampling._resolve_seed` set.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..audio_input import SAMPLE_RATE
from ..diffusion.edits import generate_windowed, plan_windows
from ..diffusion.edm import karras_sigmas
from ..errors import InputError
from ..request import INFERENCE_PRECISIONS, GenerationRequest
from ..torchutil import inference_autocast, seeded_generator
from .harmony import DEFAULT_STRENGTH, LEVEL_STEPS, HarmonyGuide

#: Windowed generation's window length in units of the model's training window (the module doc of
#: :mod:`diffariff.pipeline.accompanist`).
WINDOW_TRAIN_RATIO = 2.0


class LatentSampling:
    """Mixin: :meth:`sample_latents` and its helpers (module doc); :attr:`last_windows` lists the windows
    ``(first, end)`` (latent frames) of the last sampling, :attr:`last_seed` its seed."""

    # initialised by the host's __init__
    last_windows: list[tuple[int, int]]
    last_seed: int | None

    def sample_latents(
        self, ctx_latents: torch.Tensor | None, clap: torch.Tensor | None, frames: int,
        request: GenerationRequest | None = None, *, known: torch.Tensor | None = None,
        keep: torch.Tensor | None = None, init: torch.Tensor | None = None, strength: float | None = None,
        style: torch.Tensor | None = None, ctx_chroma: torch.Tensor | None = None, **options,
    ) -> torch.Tensor:
        """Generate ``request.n`` target latents [n, 64, frames] in codec units.

        ``request`` (:class:`~diffariff.request.GenerationRequest`, fields overridden by ``options``) gives
        the sampling controls, the candidates, the seed and the long-context windows; its conditions are
        not read here: ``clap`` [1, D] or None is the CLAP condition already chosen. ``ctx_latents``
        [1, 64, frames] or None; ``ctx_chroma`` [1, 12, frames] the context's chroma
        (:attr:`~diffariff.pipeline.accompanist.Context.chroma`), needed with ``ctx_latents`` by a model
        trained with ``context_chroma`` (InputError without it) and ignored by other models. Edits (codec
        units, [1, 64, frames]): ``known`` + ``keep`` (bool [frames], True = keep) inpaint; ``init`` +
        ``strength`` variation; ``style`` latents (any length) ground the timbre with the request's
        ``style_strength``. The windows used are left in :attr:`last_windows`.
        """
        req = GenerationRequest.build(request, **options)
        n = int(req.n)
        model, sampler = self.model_for(req.sampler)
        steps = int(req.steps if req.steps is not None else model.config.default_sampling()[1])
        seed = self._resolve_seed(req.seed)
        window_frames = self._seconds_to_frames(req.window_seconds)
        window = self.default_window_frames(model) if window_frames is None else int(window_frames)
        if window < 2:
            raise InputError(f"window length must be at least 2 latent frames, got {window}")
        windowed = req.long_mode == "windowed" or (req.long_mode == "auto" and frames > window)
        overlap = self._overlap(window, self._seconds_to_frames(req.overlap_seconds))
        plan = plan_windows(frames, window, overlap) if windowed else [(0, frames)]
        if len(plan) > 1 and req.loop:
            raise InputError("loops need direct generation (long_mode='direct') or a context within one "
                             "window")
        self.last_windows = plan
        # the chroma goes with the context, to the models that take it
        chroma_t = ctx_chroma if ctx_latents is not None and model.config.context_chroma else None
        if chroma_t is not None and chroma_t.shape[-1] != frames:
            raise InputError(f"ctx_chroma has {chroma_t.shape[-1]} frames, expected {frames}")
        keep_t = None if keep is None else torch.as_tensor(keep, dtype=torch.bool).reshape(-1)
        if keep_t is not None and keep_t.shape[0] != frames:
            raise InputError(f"keep mask has {keep_t.shape[0]} frames, expected {frames}")
        total = len(plan) * (steps if init is None else max(1, round(steps * float(strength or 1.0))))
        bar = tqdm(total=total, desc="generating", unit="step",
                   disable=(None if req.progress is None else not req.progress), leave=False)
        controls = {**req.sampling(), "sampler": sampler, "steps": steps}
        pull = self.harmony_strength(req) if ctx_latents is not None else 0.0  # harmony guidance strength
        if pull > 0 and (ctx_chroma is None or ctx_chroma.shape[-1] != frames):
            raise InputError("harmony guidance needs the context's chroma for every frame (ctx_chroma)")
        mc = model.config
        levels = karras_sigmas(LEVEL_STEPS, mc.sigma_min, mc.sigma_max, mc.rho)[:-1].tolist()

        def harmony(a: int, b: int) -> list:
            if pull <= 0:
                return []
            return [HarmonyGuide(self.pitch_energy, model.latent_mean, model.latent_std, ctx_chroma[..., a:b],
                                 pull, levels=levels)]

        def sample_window(w: int, a: int, b: int, win_known: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
            if keep_t is not None and known is not None:  # the user's kept frames join the overlap
                outside = keep_t[a:b] & ~mask
                win_known[..., outside] = known[..., a:b].expand(n, -1, -1)[..., outside]
                mask = mask | keep_t[a:b]
            inpaint = bool(mask.any())
            return model.sample(
                None if ctx_latents is None else ctx_latents[..., a:b], clap, frames=b - a, batch=n,
                seed=int(seed) + 7919 * w, callback=lambda _d: bar.update(1),
                init=None if init is None else init[..., a:b], strength=strength,
                inpaint_latents=win_known if inpaint else None,
                inpaint_mask=mask.float().reshape(1, 1, -1) if inpaint else None, style=style,
                context_chroma=None if chroma_t is None else chroma_t[..., a:b], wrappers=harmony(a, b),
                **controls,
            )

        try:
            with inference_autocast(INFERENCE_PRECISIONS[req.precision], next(model.parameters()).device):
                out = generate_windowed(sample_window, plan, batch=n, channels=model.config.latent_channels)
        finally:
            bar.close()
        if keep_t is not None and known is not None:  # exact in codec units (no normalisation round trip)
            out[..., keep_t] = known.expand(n, -1, -1)[..., keep_t]
        return out

    @property
    def pitch_energy(self):
        """What harmony guidance reads: latents ``[B, D, T]`` (codec units) -> pitch-class power
        ``[B, 12, T]`` from the bundle's pitch critic when it has one, else from the synth codec's decoder."""
        return self.codec.pitch_class_energy if self.pitch_critic is None else self.pitch_critic.energy

    def harmony_strength(self, request: GenerationRequest) -> float:
        """The harmony guidance strength of ``request`` on this bundle: its ``harmony``, or when None
        :data:`~diffariff.pipeline.harmony.DEFAULT_STRENGTH` with a codec that has an oscillator bank and 0
        without; InputError for a strength > 0 the codec cannot serve."""
        can = getattr(self.codec, "can_transpose", False)
        if request.harmony is None:
            return DEFAULT_STRENGTH if can else 0.0
        if float(request.harmony) > 0 and not can:
            raise InputError("harmony guidance needs a bundle whose codec has an oscillator bank "
                             "(the synth codec)")
        return float(request.harmony)

    def _resolve_seed(self, seed: int | None) -> int:
        """``seed``, or a fresh random one when None; remembered in :attr:`last_seed`."""
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=seeded_generator(None)))
        self.last_seed = int(seed)
        return self.last_seed

    @staticmethod
    def default_window_frames(model) -> int:
        """Window length (latent frames) of windowed generation: ``WINDOW_TRAIN_RATIO`` x the model's
        ``train_frames`` (the module doc of :mod:`diffariff.pipeline.accompanist`)."""
        return int(round(WINDOW_TRAIN_RATIO * model.config.train_frames))

    @staticmethod
    def _overlap(window: int, overlap_frames: int | None) -> int:
        ov = max(1, window // 4) if overlap_frames is None else int(overlap_frames)
        if not 0 < ov < window:
            raise InputError(f"window overlap must be between 1 and {window - 1} latent frames, got {ov}")
        return ov

    def window_boundaries(self) -> list[float]:
        """Times (seconds) where the windows of the last generation start new material (the end of
        each overlap with the previous window), for :func:`~diffariff.eval.seams.measure_seams`. Empty
        for one window."""
        spf = self.samples_per_frame / SAMPLE_RATE
        return [self.last_windows[i - 1][1] * spf for i in range(1, len(self.last_windows))]

    def _seconds_to_frames(self, seconds: float | None) -> int | None:
        return None if seconds is None else max(1, round(seconds * SAMPLE_RATE / self.samples_per_frame))
