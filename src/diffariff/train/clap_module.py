"""CLAP training pieces: run config, in-RAM corpus dataset, contrastive loss, Lightning module.

Kept apart from :mod:`diffariff.train.clap` (the command) so that building the CLI does not import
Lightning. Data: every song of a split is decoded once into RAM (mono float16 at the tower's
``frontend_rate``); a sample is a random ``window_seconds`` crop of one stem or of the mixture
(re-drawn when silent), a random gain, and one of a fixed pool of prompts for that stem / mixture,
whose frozen sentence embeddings are computed once per distinct prompt at start-up. The EMA step and
the warm-up + cosine AdamW schedule are :mod:`diffariff.train.common`'s.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..clap.builtin import BuiltinClap, ClapConfig
from ..clap.corpus import SongEntry, load_song_audio
from ..clap.prompts import mixture_label, mixture_prompt, stem_label, stem_prompt
from ..clap.text_tower import FrozenTextEncoder
from ..errors import ConfigError, DatasetError
from .common import adamw_with_schedule, ema_decay, ema_update_, lr_factor, session_throughput

MIXTURE = "mixture"


@dataclasses.dataclass
class ClapTrainConfig:
    """Training settings (steps, optimiser, data recipe). Lengths in seconds, gains in dB."""

    batch_size: int = 32
    max_steps: int = 4000
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    mixture_prob: float = 0.25
    prompts_per_item: int = 24
    tag_dropout: float = 0.35
    gain_db: tuple[float, float] = (-12.0, 3.0)
    silence_db: float = -50.0
    val_samples: int = 256
    val_every: int = 250
    checkpoint_every: int = 250
    precision: str = "32-true"
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ConfigError("contrastive training needs batch_size >= 2")
        if self.max_steps < 1 or self.lr <= 0 or not (0.0 <= self.ema_decay < 1.0):
            raise ConfigError("need max_steps >= 1, lr > 0 and 0 <= ema_decay < 1")
        if not (0.0 <= self.mixture_prob <= 1.0) or self.prompts_per_item < 1:
            raise ConfigError("need 0 <= mixture_prob <= 1 and prompts_per_item >= 1")


@dataclasses.dataclass
class ClapRunConfig:
    """What ``configs/clap_*.json`` holds: the model and the training recipe."""

    model: ClapConfig = dataclasses.field(default_factory=ClapConfig)
    train: ClapTrainConfig = dataclasses.field(default_factory=ClapTrainConfig)


# ---- data ------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Item:
    song: int
    key: str  # stem name or MIXTURE
    label: int
    prompts: list[int]


class PromptBank:
    """Distinct prompts and their frozen sentence features ``[P, text_dim]`` (computed once)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._index: dict[str, int] = {}
        self.features: torch.Tensor | None = None

    def add(self, text: str) -> int:
        if text not in self._index:
            self._index[text] = len(self.texts)
            self.texts.append(text)
        return self._index[text]

    def compute(self, encoder: FrozenTextEncoder, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        chunks = []
        for i in tqdm(range(0, len(self.texts), batch_size), desc="prompt embeddings", disable=not progress):
            chunks.append(encoder.encode(self.texts[i:i + batch_size], batch_size=batch_size))
        self.features = torch.cat(chunks)
        return self.features


class ClapCorpusDataset(Dataset):
    """``(audio [window] float32 at frontend_rate, prompt index, label index)`` samples.

    Sample ``i`` is a pure function of ``(seed, i)``: a random stem (or, with ``mixture_prob``, the
    mixture) of a random song, a non-silent crop, a random gain and one of its prompts. ``length``
    is a virtual size (one pass = the whole run).
    """

    def __init__(
        self,
        songs: list[SongEntry],
        model_config: ClapConfig,
        train_config: ClapTrainConfig,
        bank: PromptBank,
        labels: dict[str, int],
        length: int,
        seed: int,
        progress: bool = False,
    ) -> None:
        self.rate = model_config.frontend_rate
        self.window = model_config.window_samples
        self.cfg = train_config
        self.length = int(length)
        self.seed = int(seed)
        self.offset = 0  # added to every index: a resumed run continues with fresh samples
        self.audio: list[dict[str, np.ndarray]] = []
        self.stem_items: list[_Item] = []
        self.mix_items: list[_Item] = []
        for si, song in enumerate(tqdm(songs, desc="decoding corpus", disable=not progress)):
            tracks = load_song_audio(song, self.rate, with_mixture=True)
            self.audio.append({k: v.astype(np.float16) for k, v in tracks.items()})
            for ki, (name, meta) in enumerate(song.stems.items()):
                rng = random.Random(f"{seed}/{song.name}/{ki}")
                prompts = sorted({bank.add(stem_prompt(meta, rng, train_config.tag_dropout))
                                  for _ in range(train_config.prompts_per_item)})
                label = labels.setdefault(stem_label(meta), len(labels))
                self.stem_items.append(_Item(si, name, label, prompts))
            rng = random.Random(f"{seed}/{song.name}/mix")
            prompts = sorted({bank.add(mixture_prompt(song.meta, rng)) for _ in range(train_config.prompts_per_item)})
            label = labels.setdefault(mixture_label(song.meta), len(labels))
            self.mix_items.append(_Item(si, MIXTURE, label, prompts))
        if not self.stem_items:
            raise DatasetError("the corpus split has no stems to train on")

    def __len__(self) -> int:
        return self.length

    def _crop(self, track: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = track.shape[0]
        if n <= self.window:
            return np.pad(track.astype(np.float32), (0, self.window - n))
        best, best_rms = None, -1.0
        for _ in range(6):
            s = int(rng.integers(0, n - self.window + 1))
            clip = track[s:s + self.window].astype(np.float32)
            rms = float(np.sqrt(np.mean(clip.astype(np.float64) ** 2)))
            if rms > best_rms:
                best, best_rms = clip, rms
            if 20 * math.log10(rms + 1e-12) > self.cfg.silence_db:
                break
        return best

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        rng = np.random.default_rng([self.seed, int(index) + self.offset])
        use_mix = self.mix_items and rng.random() < self.cfg.mixture_prob
        items = self.mix_items if use_mix else self.stem_items
        item = items[int(rng.integers(len(items)))]
        clip = self._crop(self.audio[item.song][item.key], rng)
        lo, hi = self.cfg.gain_db
        clip = clip * np.float32(10.0 ** (rng.uniform(lo, hi) / 20.0))
        prompt = item.prompts[int(rng.integers(len(item.prompts)))]
        return torch.from_numpy(np.clip(clip, -1.0, 1.0)), prompt, item.label


# ---- loss ------------------------------------------------------------------------------------


def multi_positive_infonce(
    audio_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor, positives: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE with several positives per row (MIL-NCE form).

    For each row, ``-log(sum of the softmax mass on its positives)``: any split of the mass among
    true matches is optimal, so identical or equivalent texts are not pushed apart (plain InfoNCE
    would charge ``log k`` for ``k`` indistinguishable matches). Equals CLIP's loss when
    ``positives`` is the identity.

    Args:
        audio_emb, text_emb: L2-normalised ``[B, D]``; row i of each is a training pair.
        logit_scale: log of the inverse temperature (scalar).
        positives: bool ``[B, B]``, ``positives[i, j]`` when text j truly describes audio i (same
            prompt or same label); the diagonal must be true.
    Returns: ``(loss, accuracy)`` where accuracy is the rate of rows (both directions) whose best
        match is a positive.
    """
    logits = logit_scale.exp() * audio_emb.float() @ text_emb.float().T
    neg_inf = torch.finfo(logits.dtype).min

    def one_way(lg: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return (torch.logsumexp(lg, dim=1) - torch.logsumexp(lg.masked_fill(~pos, neg_inf), dim=1)).mean()

    a2t = one_way(logits, positives)
    t2a = one_way(logits.T, positives.T)
    with torch.no_grad():
        rows = torch.arange(logits.shape[0], device=logits.device)
        acc_a = positives[rows, logits.argmax(1)].float().mean()
        acc_t = positives.T[rows, logits.T.argmax(1)].float().mean()
    return (a2t + t2a) / 2, (acc_a + acc_t) / 2


def positives_mask(prompt_idx: torch.Tensor, label_idx: torch.Tensor) -> torch.Tensor:
    """``[B, B]`` bool: same prompt or same label (what the prompt is about)."""
    return (prompt_idx[:, None] == prompt_idx[None]) | (label_idx[:, None] == label_idx[None])


#: another name of :func:`lr_factor`, the learning-rate multiplier (linear warm-up, cosine to ``min_ratio``)
lr_lambda = lr_factor


# ---- Lightning module ----------------------------------------------------------------------------


class ClapLightning(L.LightningModule):
    """Trains :class:`BuiltinClap` (audio tower + heads + temperature) against frozen text features.

    ``text_features``: ``[P, text_dim]`` sentence features of the prompt bank, indexed by the
    dataset's prompt indices. With ``ema_decay > 0`` an EMA copy is kept (and saved in Lightning
    checkpoints); :meth:`export_model` returns the EMA weights then.
    """

    def __init__(self, run_config: ClapRunConfig, text_features: torch.Tensor) -> None:
        super().__init__()
        self.run_config = run_config
        self.cfg = run_config.train
        self.model = BuiltinClap(run_config.model)
        self.model.train()
        self.register_buffer("text_features", text_features.float(), persistent=False)
        self.ema = None
        if self.cfg.ema_decay > 0:
            self.ema = copy.deepcopy(self.model)
            self.ema.requires_grad_(False)

    def _step(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        audio, prompt_idx, label_idx = batch
        a = self.model.audio_forward(audio)
        t = self.model.text_forward(self.text_features[prompt_idx])
        scale = self.model.logit_scale.clamp(max=math.log(100.0))
        return multi_positive_infonce(a, t, scale, positives_mask(prompt_idx, label_idx))

    def training_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"train/loss": loss, "train/acc": acc, "train/temp": 1.0 / self.model.logit_scale.exp()},
                      prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        model = self.model
        if self.ema is not None:
            self.model = self.ema
        try:
            loss, acc = self._step(batch)
        finally:
            self.model = model
        self.log_dict({"val/loss": loss, "val/acc": acc}, prog_bar=True, batch_size=batch[0].shape[0])

    def on_train_start(self) -> None:
        self._timing = (time.perf_counter(), int(self.global_step))
        dataset = getattr(self, "train_dataset", None)
        if dataset is not None:  # resumed: do not replay the samples already seen
            dataset.offset = int(self.global_step) * self.cfg.batch_size

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            ema_update_(self.ema, self.model, ema_decay(self.cfg.ema_decay, int(self.global_step)))

    def on_train_end(self) -> None:
        steps, elapsed = session_throughput(getattr(self, "_timing", None), int(self.global_step))
        self.throughput = {"steps": steps, "seconds": round(elapsed, 1),
                           "clips_per_second": round(steps * self.cfg.batch_size / elapsed, 2)}

    def configure_optimizers(self):
        c = self.cfg  # no weight decay on 0-/1-D parameters (biases, norms, the temperature)
        return adamw_with_schedule(self.model, c.lr, c.max_steps, c.warmup_steps, c.betas, c.weight_decay,
                                   c.min_lr_ratio)

    def export_model(self) -> BuiltinClap:
        """The model to ship (EMA weights when kept), in eval mode."""
        model = copy.deepcopy(self.ema if self.ema is not None else self.model)
        return model.float().eval()
