"""The CLAP modality-gap bridge (Improved Diff-A-Riff's CLAP_beta): a diffusion MLP that samples
an *audio*-CLAP embedding given a *text*-CLAP embedding, or unconditionally.

Text and audio CLAP embeddings lie on disjoint regions of the sphere (the modality gap); the latent
diffusion model is trained on audio embeddings, so a text prompt is first carried over to the
audio side by sampling from p(audio emb | text emb). Sampling gives several distinct audio
embeddings for one prompt (variations), and the unconditional model (the text replaced by a
learned null embedding, trained with probability ``p_uncond``) gives CLAP_A* embeddings.

Public API::

    bridge = ClapBridge(BridgeConfig(dim=clap.dim, text_dim=clap.dim))   # or ClapBridge.load(path)
    a = bridge.sample(clap.embed_text(["warm electric bass"]), n_per_text=4, seed=0)  # [4, dim]
    u = bridge.sample(None, n_per_text=8, seed=0)                                      # [8, dim]

Network: embeddings are centred by the training mean and scaled so that their element std
(``sigma_data``, measured on the audio embeddings) becomes 0.5, EDM's reference value; an EDM
denoiser (:mod:`diffariff.diffusion.edm`) wraps an MLP of ``blocks`` residual dense blocks of width
``hidden``, each modulated (AdaLN-Zero: shift, scale, gate) by the sum of a sinusoidal noise-level
embedding and a projection of the text embedding. Samples are mapped back and L2-normalised.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import config_from_dict, file_sha256, load_checkpoint, load_state_into, save_checkpoint
from ..diffusion.edm import EDMDenoiser, edm_loss, karras_sigmas
from ..diffusion.guidance import GuidedDenoiser
from ..diffusion.samplers import get_sampler
from ..errors import CheckpointError, ConfigError, InputError
from ..nets.layers import AdaLNZero, SinusoidalEmbedding
from ..torchutil import seeded_generator

#: Checkpoint kind of this model.
KIND = "clap-bridge"
#: EDM's reference data std: the network works on embeddings scaled to this element std.
EDM_SIGMA_DATA = 0.5
#: What a bridge can be conditioned on (:attr:`BridgeConfig.condition`).
CONDITIONS = ("text", "context")


@dataclasses.dataclass
class BridgeConfig:
    """Configuration of :class:`ClapBridge` (travels inside its checkpoint).

    ``dim``: width of the audio-CLAP embeddings produced; ``text_dim``: width of the text-CLAP
    embeddings consumed (the same CLAP, so normally equal to ``dim``). ``hidden`` / ``blocks``: MLP
    width and number of residual dense blocks (paper: 1024 / 8); ``mlp_ratio``: inner width factor
    of a block; ``noise_emb_dim``: sinusoidal noise-level features. ``p_uncond``: training
    probability of replacing the text with the null embedding. ``sigma_data``: element std of the
    centred audio embeddings (measured at training start; 0 = not measured yet). ``p_mean`` /
    ``p_std``: log-normal training noise levels and ``sigma_min`` / ``sigma_max`` / ``rho``: the
    Karras sampling schedule, all in the normalised space (element std 0.5). ``steps`` / ``sampler``:
    sampling defaults. ``clap_sha256``: identity (file hash) of the CLAP checkpoint whose embeddings
    the bridge was trained on ("" = unknown). ``condition``: what the conditioning embedding is —
    ``"text"`` (the text-CLAP embedding of a prompt: the modality-gap bridge) or ``"context"`` (the
    audio-CLAP embedding of a context mix: the context prior of :mod:`diffariff.priors.context_prior`,
    which samples a target stem's embedding that fits the context).
    """

    dim: int = 512
    text_dim: int = 512
    hidden: int = 1024
    blocks: int = 8
    mlp_ratio: int = 2
    noise_emb_dim: int = 256
    p_uncond: float = 0.2
    sigma_data: float = 0.0
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    steps: int = 25
    sampler: str = "heun"
    clap_sha256: str = ""
    condition: str = "text"

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ConfigError(f"BridgeConfig: condition must be one of {', '.join(CONDITIONS)}, got '{self.condition}'")
        if min(self.dim, self.text_dim, self.hidden, self.blocks, self.mlp_ratio) < 1:
            raise ConfigError("BridgeConfig: dim, text_dim, hidden, blocks and mlp_ratio must be >= 1")
        if self.noise_emb_dim < 2 or self.noise_emb_dim % 2:
            raise ConfigError(f"BridgeConfig: noise_emb_dim must be even and >= 2, got {self.noise_emb_dim}")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ConfigError(f"BridgeConfig: p_uncond must be in [0, 1], got {self.p_uncond}")
        if self.sigma_data < 0 or self.p_std <= 0 or not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError("BridgeConfig: need sigma_data >= 0, p_std > 0 and 0 < sigma_min < sigma_max")
        if self.steps < 1:
            raise ConfigError(f"BridgeConfig: steps must be >= 1, got {self.steps}")


class DenseBlock(nn.Module):
    """Residual dense block ``[B, H] -> [B, H]``: x + gate * MLP(LN(x) * (1 + scale) + shift), with
    (shift, scale, gate) from the conditioning vector ``[B, H]`` (AdaLN-Zero: the block starts as
    the identity)."""

    def __init__(self, hidden: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden * mlp_ratio), nn.SiLU(),
                                 nn.Linear(hidden * mlp_ratio, hidden))
        self.ada = AdaLNZero(hidden, hidden, 3)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(cond)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class BridgeNet(nn.Module):
    """The raw network F of the EDM denoiser: ``(x [B, dim], c_noise [B], clap [B, text_dim] | None,
    drop_clap bool [B] | None) -> [B, dim]``.

    ``clap`` is the *text* CLAP embedding (the keyword names follow
    :class:`~diffariff.diffusion.guidance.GuidedDenoiser`, which supplies classifier-free guidance);
    rows with ``drop_clap`` true, or all rows when ``clap`` is None, use the learned null embedding.
    """

    def __init__(self, config: BridgeConfig) -> None:
        super().__init__()
        h = config.hidden
        self.inp = nn.Linear(config.dim, h)
        self.noise_emb = SinusoidalEmbedding(config.noise_emb_dim)
        self.noise_mlp = nn.Sequential(nn.Linear(config.noise_emb_dim, h), nn.SiLU(), nn.Linear(h, h))
        self.text_mlp = nn.Sequential(nn.Linear(config.text_dim, h), nn.SiLU(), nn.Linear(h, h))
        self.null_text = nn.Parameter(torch.zeros(config.text_dim))
        nn.init.normal_(self.null_text, std=config.text_dim**-0.5)
        self.blocks = nn.ModuleList(DenseBlock(h, config.mlp_ratio) for _ in range(config.blocks))
        self.out_norm = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.out_ada = AdaLNZero(h, h, 2)
        self.out = nn.Linear(h, config.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, clap: torch.Tensor | None = None,
                drop_clap: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        null = self.null_text.to(x.dtype).expand(b, -1)
        if clap is None:
            text = null
        else:
            text = clap.to(x.dtype)
            if drop_clap is not None:
                text = torch.where(drop_clap.reshape(b, 1).bool(), null, text)
        cond = self.noise_mlp(self.noise_emb(c_noise).to(x.dtype)) + self.text_mlp(text)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.out_ada(cond)
        return self.out(self.out_norm(h) * (1 + scale) + shift)


class ClapBridge(nn.Module):
    """Text-CLAP -> audio-CLAP embedding sampler (see the module docstring).

    Buffers: ``data_mean`` ``[dim]`` (mean of the training audio embeddings); with
    ``config.sigma_data`` they map an embedding ``e`` to the network space
    ``z = (e - data_mean) * 0.5 / sigma_data`` and back.
    """

    def __init__(self, config: BridgeConfig | None = None) -> None:
        super().__init__()
        self.config = config or BridgeConfig()
        c = self.config
        self.denoiser = EDMDenoiser(BridgeNet(c), sigma_data=EDM_SIGMA_DATA, p_mean=c.p_mean, p_std=c.p_std)
        self.register_buffer("data_mean", torch.zeros(c.dim))

    # ---- normalisation ---------------------------------------------------------------------------

    @property
    def scale(self) -> float:
        """Factor from centred embedding units to the network space (0.5 / sigma_data)."""
        if not self.config.sigma_data > 0:
            raise ConfigError("the bridge has no data statistics yet (call set_data_stats before use)")
        return EDM_SIGMA_DATA / self.config.sigma_data

    @torch.no_grad()
    def set_data_stats(self, audio_emb: torch.Tensor) -> float:
        """Measure and store the mean ``[dim]`` and element std (``config.sigma_data``) of the
        training audio embeddings ``[N, dim]``. Returns sigma_data."""
        from ..diffusion.edm import measure_sigma_data

        emb = self._check_emb(audio_emb, self.config.dim, "audio embeddings").double()
        if emb.shape[0] < 2:
            raise InputError("set_data_stats needs at least 2 audio embeddings")
        mean = emb.mean(dim=0)
        sigma = measure_sigma_data(emb - mean)
        if not sigma > 0:
            raise InputError("the audio embeddings are all identical (sigma_data = 0)")
        self.data_mean.copy_(mean.float())
        self.config = dataclasses.replace(self.config, sigma_data=float(sigma))
        return float(sigma)

    def to_net(self, emb: torch.Tensor) -> torch.Tensor:
        """Audio embeddings ``[B, dim]`` -> network space ``[B, dim]`` (element std ~0.5)."""
        return (emb - self.data_mean) * self.scale

    def from_net(self, z: torch.Tensor) -> torch.Tensor:
        """Network space ``[B, dim]`` -> L2-normalised audio embeddings ``[B, dim]``."""
        return F.normalize(z / self.scale + self.data_mean, dim=-1)

    @staticmethod
    def _check_emb(t: torch.Tensor, dim: int, what: str) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            raise InputError(f"{what} must be a torch Tensor, got {type(t).__name__}")
        if t.ndim != 2 or t.shape[1] != dim or t.shape[0] == 0:
            raise InputError(f"{what} must be shaped [B, {dim}] with B >= 1, got {list(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise InputError(f"{what} contain NaN or infinite values")
        return t.float()

    # ---- training ------------------------------------------------------------------------------

    def loss(self, audio_emb: torch.Tensor, text_emb: torch.Tensor | None, drop: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean EDM loss (scalar) on a batch of pairs: audio embeddings ``[B, dim]``, text
        embeddings ``[B, text_dim]`` (None = all unconditional) and ``drop`` bool ``[B]`` (rows
        trained unconditionally; drawn with ``p_uncond`` from ``generator`` when None)."""
        x0 = self.to_net(audio_emb.float())
        if text_emb is not None and drop is None:
            drop = torch.rand(x0.shape[0], generator=generator, device=x0.device) < self.config.p_uncond
        cond = {} if text_emb is None else {"clap": text_emb.float(), "drop_clap": drop}
        per_sample, _ = edm_loss(self.denoiser, x0, cond, generator)
        return per_sample.mean()

    # ---- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        text_emb: torch.Tensor | None,
        *,
        n_per_text: int = 1,
        steps: int | None = None,
        guidance: float = 1.0,
        sampler: str | None = None,
        seed: int | None = 0,
    ) -> torch.Tensor:
        """Sample audio-CLAP embeddings.

        Args:
            text_emb: text-CLAP embeddings ``[B, text_dim]``, or None for unconditional sampling
                (then B = 1: ``n_per_text`` unconditional samples).
            n_per_text: samples per text; rows ``i * n .. (i + 1) * n - 1`` belong to text ``i``.
            steps: sampler steps (default ``config.steps``); Heun uses 2 passes per step.
            guidance: classifier-free guidance strength on the text (1 = plain conditional).
            sampler: "heun" (default ``config.sampler``), "euler" or "dpmpp_2m".
            seed: same seed, same inputs -> same output (None = fresh randomness).
        Returns: L2-normalised audio-space embeddings ``[B * n_per_text, dim]`` float32.
        """
        if n_per_text < 1:
            raise InputError(f"n_per_text must be >= 1, got {n_per_text}")
        if not guidance >= 0:
            raise InputError(f"guidance must be >= 0, got {guidance}")
        c = self.config
        text = None if text_emb is None else self._check_emb(text_emb, c.text_dim, "text embeddings")
        b = 1 if text is None else text.shape[0]
        device = self.data_mean.device
        if text is not None:
            text = text.to(device).repeat_interleave(n_per_text, dim=0)
        sigmas = karras_sigmas(int(steps or c.steps), c.sigma_min, c.sigma_max, c.rho, device=device)
        gen = seeded_generator(seed)
        x = torch.randn(b * n_per_text, c.dim, generator=gen).to(device) * sigmas[0]
        was_training = self.training
        self.eval()
        try:
            if text is None:
                denoise = self.denoiser
            else:
                denoise = GuidedDenoiser(self.denoiser, clap=text, w_ctx=1.0, w_clap=float(guidance))
            z = get_sampler(sampler or c.sampler)(denoise, x, sigmas, generator=gen)
        finally:
            self.train(was_training)
        return self.from_net(z).float()

    # ---- persistence -----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, extra: dict | None = None, *, fp16: bool = False) -> Path:
        """Write the weights, the data statistics and the config (with the CLAP identity) to one
        ``.safetensors`` file (atomically). ``extra``: JSON-able notes (training step, metrics);
        ``fp16=True`` halves the file for shipping (loading always gives float32)."""
        if not self.config.sigma_data > 0:
            raise ConfigError("refusing to save a bridge without data statistics (sigma_data = 0)")
        return save_checkpoint(path, self.state_dict(), kind=KIND, config=self.config, extra=extra,
                               dtype=torch.float16 if fp16 else None)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ClapBridge:
        """Rebuild a bridge saved with :meth:`save` (eval mode). Raises CheckpointError / ConfigError."""
        ckpt = load_checkpoint(path, kind=KIND)
        config = config_from_dict(BridgeConfig, ckpt.config)
        if not config.sigma_data > 0:
            raise CheckpointError(f"{path}: bridge checkpoint has no data statistics")
        model = cls(config)
        load_state_into(model, ckpt.tensors, path)
        return model.eval()

    def check_clap(self, clap_path: str | os.PathLike) -> bool:
        """True when the CLAP checkpoint at ``clap_path`` is the one the bridge was trained on (or
        the bridge does not record one)."""
        return not self.config.clap_sha256 or file_sha256(clap_path) == self.config.clap_sha256

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---- corpus embeddings and evaluation ----------------------------------------------------------


@dataclasses.dataclass
class StemEmbeddings:
    """Audio-CLAP embeddings of random crops of corpus stems.

    ``audio``: ``[S, K, dim]`` (K crops per stem, L2-normalised); ``songs`` / ``stems``: the song
    and stem name of each of the S stems; ``metas``: each stem's metadata dict (for prompts)."""

    audio: torch.Tensor
    songs: list[str]
    stems: list[str]
    metas: list[dict]

    def centroids(self) -> torch.Tensor:
        """Normalised mean of each stem's crop embeddings: ``[S, dim]``."""
        return F.normalize(self.audio.mean(dim=1), dim=-1)


def _crop_starts(track, crops: int, length: int, rng, silence_db: float) -> list[int]:
    """``crops`` start samples of ``length``-sample crops of ``track`` [N], each the loudest of up to
    6 random draws (stopping early at the first that is not silent)."""
    import numpy as np

    n = track.shape[0]
    if n <= length:
        return [0] * crops
    starts = []
    for _ in range(crops):
        best, best_rms = 0, -1.0
        for _ in range(6):
            s = int(rng.integers(0, n - length + 1))
            rms = float(np.sqrt(np.mean(track[s:s + length].astype(np.float64) ** 2)))
            if rms > best_rms:
                best, best_rms = s, rms
            if rms > 10.0 ** (silence_db / 20.0):
                break
        starts.append(best)
    return starts


def stem_crop_embeddings(
    clap, songs, *, crops_per_stem: int = 4, crop_seconds: float = 10.0, seed: int = 0,
    silence_db: float = -50.0, batch_size: int = 16, progress: bool = False,
) -> StemEmbeddings:
    """Embed ``crops_per_stem`` random ``crop_seconds``-long crops of every non-silent stem of
    ``songs`` (:class:`~diffariff.clap.corpus.SongEntry` list) with ``clap.embed_audio``.

    Crops are a pure function of (seed, song name, stem name), so the same stems give the same
    crops whatever other songs are present. Raises DatasetError when no stem is usable.
    """
    import zlib

    import numpy as np
    from tqdm.auto import tqdm

    from ..audio import is_silent
    from ..clap.corpus import load_song_audio
    from ..errors import DatasetError

    if crops_per_stem < 1 or not crop_seconds > 0:
        raise InputError(f"need crops_per_stem >= 1 and crop_seconds > 0, got {crops_per_stem}, {crop_seconds}")
    rate = int(clap.config.frontend_rate)
    length = int(round(crop_seconds * rate))
    embs, song_names, stem_names, metas = [], [], [], []
    for song in tqdm(songs, desc="bridge: embedding stems", unit="song", disable=not progress):
        audio = load_song_audio(song, rate, with_mixture=False)
        for name, meta in song.stems.items():
            track = audio[name]
            if is_silent(track, silence_db):
                continue
            rng = np.random.default_rng([int(seed), zlib.crc32(f"{song.name}/{name}".encode())])
            starts = _crop_starts(track, crops_per_stem, length, rng, silence_db)
            clips = np.stack([np.pad(track[s:s + length], (0, max(0, length - track[s:s + length].shape[0])))
                              for s in starts])
            embs.append(clap.embed_audio(clips, sample_rate=rate, batch_size=batch_size))
            song_names.append(song.name)
            stem_names.append(name)
            metas.append(dict(meta))
    if not embs:
        raise DatasetError("no non-silent stems to embed")
    return StemEmbeddings(torch.stack(embs), song_names, stem_names, metas)


def _recall(queries: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """Rate of queries ``[S, D]`` whose own target (same row of ``targets`` ``[S, D]``) is in the
    top ``k`` by cosine."""
    scores = queries @ targets.T
    top = scores.topk(min(k, targets.shape[0]), dim=1).indices
    return float((top == torch.arange(queries.shape[0])[:, None]).any(dim=1).float().mean())


def mean_pairwise_distance(emb: torch.Tensor) -> float:
    """Mean cosine distance (1 - cos) over the distinct pairs of ``[N, D]`` unit vectors."""
    n = emb.shape[0]
    if n < 2:
        return 0.0
    sims = emb @ emb.T
    off = sims[~torch.eye(n, dtype=torch.bool)]
    return float((1.0 - off).mean())


def evaluate_bridge(
    bridge: ClapBridge,
    clap,
    corpus_root: str | os.PathLike,
    split: str = "test",
    *,
    n_samples: int = 8,
    spread_samples: int = 16,
    crops_per_stem: int = 4,
    crop_seconds: float = 10.0,
    spread_prompts: int = 8,
    steps: int | None = None,
    guidance: float = 1.0,
    seed: int = 0,
    progress: bool = False,
    embeddings: StemEmbeddings | None = None,
) -> dict:
    """Measure the bridge on the stems of the corpus ``split`` (held-out songs).

    Each non-silent stem's true audio embedding is the normalised mean of ``crops_per_stem`` crop
    embeddings (``embeddings`` reuses precomputed ones); its query is one seeded
    :func:`~diffariff.clap.prompts.stem_prompt` embedded by the text tower. Reported (JSON-able):

    * ``cos_text`` / ``cos_bridged_single`` / ``cos_bridged_mean``: mean cosine between the true
      audio embedding and the raw text embedding / one bridged sample / the normalised mean of
      ``n_samples`` bridged samples;
    * ``retrieval``: text -> audio R@1 and R@10 of the exact stem among the split's stems, querying
      with the raw text, one bridged sample and the bridged mean (``chance_r1`` / ``chance_r10``);
    * ``spread_conditional``: mean pairwise cosine distance of ``spread_samples`` samples for one
      prompt, averaged over the first ``spread_prompts`` prompts; ``spread_unconditional``: the same
      for ``spread_samples`` unconditional samples; ``spread_real``: between the true embeddings of
      the split (for scale).
    """
    import random

    from ..clap.corpus import scan_songs
    from ..clap.prompts import stem_prompt

    if n_samples < 1 or spread_samples < 2:
        raise InputError(f"need n_samples >= 1 and spread_samples >= 2, got {n_samples}, {spread_samples}")
    if embeddings is None:
        embeddings = stem_crop_embeddings(clap, scan_songs(corpus_root, split), crops_per_stem=crops_per_stem,
                                          crop_seconds=crop_seconds, seed=seed + 1, progress=progress)
    target = embeddings.centroids()
    s = target.shape[0]
    prompts = [stem_prompt(m, random.Random(f"{seed}/{song}/{stem}"))
               for song, stem, m in zip(embeddings.songs, embeddings.stems, embeddings.metas)]
    text = clap.embed_text(prompts)
    samples = bridge.sample(text, n_per_text=n_samples, steps=steps, guidance=guidance, seed=seed)
    samples = samples.reshape(s, n_samples, -1)
    single = samples[:, 0]
    mean = F.normalize(samples.mean(dim=1), dim=-1)
    k = max(1, min(spread_prompts, s))
    spread = bridge.sample(text[:k], n_per_text=spread_samples, steps=steps, guidance=guidance, seed=seed + 2)
    spread = spread.reshape(k, spread_samples, -1)
    uncond = bridge.sample(None, n_per_text=spread_samples, steps=steps, seed=seed + 1)
    return {
        "split": split,
        "stems": s,
        "n_samples": n_samples,
        "spread_samples": spread_samples,
        "guidance": guidance,
        "cos_text": float((text * target).sum(-1).mean()),
        "cos_bridged_single": float((samples * target[:, None]).sum(-1).mean()),
        "cos_bridged_mean": float((mean * target).sum(-1).mean()),
        "retrieval": {
            "text_r1": _recall(text, target, 1), "text_r10": _recall(text, target, 10),
            "bridged_single_r1": _recall(single, target, 1), "bridged_single_r10": _recall(single, target, 10),
            "bridged_mean_r1": _recall(mean, target, 1), "bridged_mean_r10": _recall(mean, target, 10),
            "chance_r1": 1.0 / s, "chance_r10": min(10, s) / s,
        },
        "spread_conditional": sum(mean_pairwise_distance(spread[i]) for i in range(k)) / k,
        "spread_unconditional": mean_pairwise_distance(uncond),
        "spread_real": mean_pairwise_distance(target),
    }


def format_bridge_report(result: dict) -> str:
    """A short human-readable summary of :func:`evaluate_bridge`'s result."""
    r = result["retrieval"]
    return "\n".join([
        f"bridge on {result['stems']} '{result['split']}' stems ({result['n_samples']} samples/prompt, "
        f"guidance {result['guidance']}):",
        f"  cosine to the true audio embedding: text {result['cos_text']:.3f}, bridged single "
        f"{result['cos_bridged_single']:.3f}, bridged mean {result['cos_bridged_mean']:.3f}",
        f"  text->audio R@1 / R@10: text {r['text_r1']:.3f} / {r['text_r10']:.3f}, bridged single "
        f"{r['bridged_single_r1']:.3f} / {r['bridged_single_r10']:.3f}, bridged mean {r['bridged_mean_r1']:.3f} / "
        f"{r['bridged_mean_r10']:.3f} (chance {r['chance_r1']:.3f} / {r['chance_r10']:.3f})",
        f"  spread (mean pairwise cosine distance): one prompt {result['spread_conditional']:.4f}, "
        f"unconditional {result['spread_unconditional']:.4f}, real stems {result['spread_real']:.4f}",
    ])
