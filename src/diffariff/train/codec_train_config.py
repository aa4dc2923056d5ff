"""Settings of the first codec's two-stage trainer (:mod:`diffariff.train.codec`): the stage-1 loss
recipes of ``--recipe`` (:data:`RECIPES`, described in that module's docstring) and
:class:`CodecTrainConfig`, every training setting of a run (schedule, loss weights of both stages,
consistency-training curriculum, data, evaluation and checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Stage-1 loss weights by recipe name (see the module docstring of :mod:`diffariff.train.codec`).
RECIPES = {
    "complex": {"w_complex": 1.0, "w_mrstft": 1.0, "w_mrstft_complex": 1.0, "w_mag": 0.0, "w_phase": 0.0,
                "w_band": 0.0},
    "magphase": {"w_complex": 0.0, "w_mrstft": 1.0, "w_mrstft_complex": 0.0, "w_mag": 1.0, "w_phase": 1.0,
                 "w_band": 2.0},
    "pitch": {"w_complex": 0.0, "w_mrstft": 1.0, "w_mrstft_complex": 0.0, "w_mag": 1.0, "w_phase": 1.0,
              "w_band": 2.0, "w_dphase": 4.0, "hires": True, "w_semitone": 2.0},
}


@dataclass
class CodecTrainConfig:
    stage: int = 1
    batch_size: int = 8
    crop_seconds: float = 2.0
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    total_steps: int = 20_000  # length of the cosine schedule and of the CT curriculum
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    # stage 1 loss weights
    w_complex: float = 1.0
    w_mrstft: float = 1.0
    w_mrstft_complex: float = 1.0
    w_wave: float = 0.0
    w_mag: float = 0.0
    w_band: float = 0.0
    w_phase: float = 0.0
    w_dphase: float = 0.0  # phase differences across frames and bins (instantaneous frequency, group delay)
    hires: bool = False  # add an 8192-point resolution to the multi-resolution STFT term
    w_semitone: float = 0.0  # log energies in semitone bands of an 8192-point STFT
    w_note: float = 0.0  # latent term: a linear read-out of each latent frame predicts its semitone profile
    note_lr_scale: float = 10.0  # the read-out's learning rate / lr: it must track the encoder, not lag it
    freeze_encoder: bool = False
    # stage 2 (consistency training)
    ct_s0: int = 10
    ct_s1: int = 1280
    ct_high_fraction: float = 0.2
    teacher_mu0: float = 0.9
    w_aux: float = 0.0  # weight of the magnitude-only reconstruction term on the student's output
    w_energy: float = 0.0  # weight of the energy score of two decodings of each clip (pairs in the batch)
    align_frames: int = 0  # > 0: the target is the true spectrogram phase-aligned to det over so many frames
    # data / evaluation / checkpoints
    silence_dbfs: float = -50.0
    keep_silent_prob: float = 0.05
    eval_every: int = 250
    eval_clips: int = 8
    eval_seconds: float = 3.0
    ckpt_every: int = 250
    seed: int = 0
