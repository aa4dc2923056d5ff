"""Where an Accompanist's CLAP condition comes from: text (through the text bridge), audio references,
ready embeddings, interpolations, and the context prior; the bridge and the prior of a bundle are read
from disk the first time they are needed (:meth:`~diffariff.pipeline.Accompanist.from_pretrained`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..audio_input import MIN_REFERENCE_SECONDS, SAMPLE_RATE, AudioLike, read_audio
from ..diffusion.edits import slerp
from ..errors import CheckpointError, ConfigError, InputError

if TYPE_CHECKING:
    from ..priors.bridge import ClapBridge
    from ..priors.neighbour_prior import NeighbourPrior


class Conditions:
    """Mixin of the Accompanist: its ``bridge`` and ``prior`` (set directly, or as files to load on first
    use: ``_bridge_file`` / ``_prior_file``) and the conditions built from them and from its ``clap``."""

    _bridge_file: Path | None = None
    _prior_file: Path | None = None

    @property
    def bridge(self) -> ClapBridge | None:
        """The text bridge (loaded from the bundle the first time it is asked for)."""
        if self._bridge_file is not None:
            from ..priors.bridge import ClapBridge

            path, self._bridge_file = self._bridge_file, None
            self._bridge = ClapBridge.load(path)
        return self._bridge

    @bridge.setter
    def bridge(self, value: ClapBridge | None) -> None:
        self._bridge, self._bridge_file = value, None

    @property
    def prior(self) -> ClapBridge | NeighbourPrior | None:
        """The context prior (loaded from the bundle the first time it is asked for)."""
        if self._prior_file is not None:
            from ..priors.load import load_context_prior

            path, self._prior_file = self._prior_file, None
            self.prior = load_context_prior(path)
        return self._prior

    @prior.setter
    def prior(self, value: ClapBridge | NeighbourPrior | None) -> None:
        if value is not None and getattr(value.config, "condition", "text") != "context":
            raise CheckpointError("the context prior must be conditioned on 'context' (a context CLAP bridge or a "
                                  "neighbour prior)")
        self._prior, self._prior_file = value, None

    def embed(self, cond: Any, *, sample_rate: int | None = None, use_bridge: bool = True,
              seed: int | None = None, bridge_steps: int | None = None) -> torch.Tensor:
        """One condition -> CLAP embedding [1, D] in audio space. ``str``: text prompt (through the
        bridge when there is one and ``use_bridge``); ``pathlib.Path``: audio file; numpy array or
        ``(array, sample_rate)``: audio; torch tensor [D] / [1, D]: a ready embedding (re-normalised)."""
        if isinstance(cond, str):
            if not cond.strip():
                raise InputError("the text prompt is empty")
            emb = self.clap.embed_text([cond])
            if self.bridge is not None and use_bridge:
                emb = self.bridge.sample(emb, steps=bridge_steps, seed=seed)
            return torch.nn.functional.normalize(emb.float(), dim=-1)
        if torch.is_tensor(cond) and cond.ndim <= 2 and cond.shape[-1] == self.clap.dim and cond.numel() == self.clap.dim:
            return torch.nn.functional.normalize(cond.reshape(1, -1).float(), dim=-1)
        if isinstance(cond, tuple) and len(cond) == 2:
            cond, sample_rate = cond
        audio = read_audio(cond, sample_rate, what="reference", min_seconds=MIN_REFERENCE_SECONDS)
        return self.clap.embed_audio(audio[None], sample_rate=SAMPLE_RATE).float()

    def interpolate(self, cond_a: Any, cond_b: Any, ratio: float, **kw) -> torch.Tensor:
        """Slerp between two conditions (see :meth:`embed`): ratio 0 -> a, 1 -> b. [1, D]."""
        return slerp(self.embed(cond_a, **kw), self.embed(cond_b, **kw), float(ratio))

    def condition(self, text: str | None = None, reference: AudioLike | None = None, *,
                  reference_sample_rate: int | None = None, clap_mix: tuple | None = None,
                  use_bridge: bool = True, seed: int | None = None) -> torch.Tensor | None:
        """The CLAP condition [1, D] of a request, or None (no CLAP condition). ``clap_mix`` wins over
        ``text`` / ``reference``; both of those -> normalised sum (module doc)."""
        kw = dict(use_bridge=use_bridge, seed=seed)
        if clap_mix is not None:
            if len(clap_mix) != 3:
                raise InputError("clap_mix must be (condition_a, condition_b, ratio)")
            return self.interpolate(clap_mix[0], clap_mix[1], clap_mix[2], **kw)
        embs = []
        if text is not None:
            embs.append(self.embed(str(text), **kw))
        if reference is not None:
            ref = Path(reference) if isinstance(reference, str) else reference
            embs.append(self.embed(ref, sample_rate=reference_sample_rate, **kw))
        if not embs:
            return None
        return torch.nn.functional.normalize(sum(embs), dim=-1)

    def context_condition(self, context_audio: np.ndarray, *, seed: int | None = None,
                          guidance: float | None = None) -> torch.Tensor:
        """A CLAP condition [1, D] sampled by the context prior for ``context_audio`` [C, N] at 48 kHz
        (a silent context gives an unconditional sample); ``guidance``: classifier-free guidance on the
        context (1 = plain conditional; None: the prior's own default). ConfigError without a prior."""
        from ..priors.context_prior import sample_for_context

        if self.prior is None:
            raise ConfigError("this bundle has no context prior")
        return sample_for_context(self.prior, self.clap, context_audio, SAMPLE_RATE, n=1, seed=seed,
                                  guidance=guidance)
