"""CLAP training on real rendered audio: the multi-positive loss, the corpus dataset, a few
optimisation steps that lower the loss, the `train clap` run (resume, export) and the evaluation."""

from __future__ import annotations

import argparse
import json
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cli_args import parse_options
from diffariff.audio import save_audio
from diffariff.clap.builtin import BuiltinClap, ClapConfig
from diffariff.clap.evaluate import evaluate_clap, format_clap_report
from diffariff.commands.train_options import clap_arguments
from diffariff.errors import DatasetError
from diffariff.train.clap import run
from diffariff.train.clap_module import (
    ClapCorpusDataset,
    ClapRunConfig,
    ClapTrainConfig,
    PromptBank,
    lr_lambda,
    multi_positive_infonce,
    positives_mask,
)

SR = 48_000
TINY = ClapConfig(dim=32, n_mels=32, channels=(8, 16, 32), pool_dim=32, audio_hidden=64, text_hidden=64,
                  window_seconds=1.0)
STEMS = {
    "piano": ({"role": "chords", "instrument": "Acoustic Grand Piano", "program": 0, "family": "piano",
               "is_drum": False, "tags": ["piano", "bright"]}, 0, False, [60, 64, 67, 72, 64, 67, 60, 55]),
    "bass": ({"role": "bass", "instrument": "Electric Bass (finger)", "program": 33, "family": "bass",
              "is_drum": False, "tags": ["electric bass", "warm"]}, 33, False, [36, 43, 41, 38, 36, 31, 33, 36]),
    "drums": ({"role": "drums", "instrument": "Standard Kit", "program": 0, "family": "drums",
               "is_drum": True, "tags": ["drum kit"]}, 0, True, [36, 42, 38, 42, 36, 42, 38, 46]),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, render_notes):
    """A tiny hand-made corpus of rendered songs: 3 train, 1 valid, 2 test; 3-s stems."""
    root = tmp_path_factory.mktemp("clap_corpus")
    plan = [("train", ["piano", "bass"]), ("train", ["drums", "bass"]), ("train", ["piano", "drums"]),
            ("valid", ["piano", "bass"]), ("test", ["piano", "bass", "drums"]), ("test", ["piano", "drums"])]
    for i, (split, names) in enumerate(plan):
        folder = root / f"song_{i:03d}"
        folder.mkdir()
        stems, mix = {}, 0
        for name in names:
            meta, program, drum, pitches = STEMS[name]
            pitches = [p + (i % 3) * (0 if drum else 2) for p in pitches]
            audio = render_notes(program, pitches, drum=drum, beat_seconds=0.375, seconds=3.0)
            save_audio(folder / f"{name}.flac", audio, SR)
            stems[name] = dict(meta, file=f"{name}.flac", style="plain", register="mid")
            mix = mix + audio
        save_audio(folder / "mixture.flac", mix * 0.5, SR)
        meta = {"split": split, "key": "C", "mode": "major", "tempo": 160.0, "style": "pop", "stems": stems}
        (folder / "metadata.json").write_text(json.dumps(meta))
    return root


def test_infonce_equals_clip_loss_with_one_positive_per_row():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    t = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    scale = torch.tensor(math.log(10.0))
    loss, _ = multi_positive_infonce(a, t, scale, torch.eye(6, dtype=torch.bool))
    logits = 10.0 * a @ t.T
    ref = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6))) / 2
    assert torch.allclose(loss, ref, atol=1e-5)


def test_duplicate_texts_are_not_pushed_apart():
    """Two bass clips with the same prompt: a perfect model has ~zero multi-positive loss, while
    plain InfoNCE would still charge log 2 for the duplicated pair."""
    emb = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    prompts, labels = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 2])
    mask = positives_mask(prompts, labels)
    assert mask[0, 1] and mask[1, 0] and not mask[0, 2]
    scale = torch.tensor(math.log(100.0))
    multi, acc = multi_positive_infonce(emb, emb, scale, mask)
    plain, _ = multi_positive_infonce(emb, emb, scale, torch.eye(4, dtype=torch.bool))
    assert float(multi) < 0.01 and float(acc) == 1.0
    assert float(plain) > 0.3


def test_lr_schedule_warms_up_then_decays():
    values = [lr_lambda(s, 10, 100, 0.1) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(b <= a + 1e-12 for a, b in zip(values[10:], values[11:]))


def test_a_few_steps_on_real_audio_reduce_the_loss(render_notes):
    """Two very different instruments, their names as prompts: 25 AdamW steps lower the loss."""
    torch.manual_seed(0)
    model = BuiltinClap(TINY)
    clips, texts = [], []
    for i in range(4):
        clips.append(render_notes(0, [60 + i, 64 + i, 67 + i, 72 + i], seconds=1.0))
        texts.append("piano")
        clips.append(render_notes(0, [36, 42 + i, 38, 46], drum=True, seconds=1.0))
        texts.append("drums")
    audio = torch.from_numpy(np.stack(clips).mean(axis=1)[:, ::2].copy())  # mono at 24 kHz
    text_features = model.text_encoder.encode(texts)
    labels = torch.tensor([0 if t == "piano" else 1 for t in texts])
    mask = positives_mask(labels, labels)

    def loss_now() -> float:
        model.eval()
        with torch.no_grad():
            loss, _ = multi_positive_infonce(model.audio_forward(audio), model.text_forward(text_features),
                                             model.logit_scale, mask)
        return float(loss)

    before = loss_now()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(25):
        loss, _ = multi_positive_infonce(model.audio_forward(audio), model.text_forward(text_features),
                                         model.logit_scale, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_now()
    assert after < 0.7 * before, (before, after)
    emb_a = model.embed_audio(np.stack(clips))
    emb_t = model.embed_text(["piano", "drums"])
    predicted = (emb_a @ emb_t.T).argmax(dim=1)
    assert torch.equal(predicted, labels)


def test_dataset_samples_are_deterministic_and_on_topic(corpus):
    from diffariff.clap.corpus import scan_songs

    songs = scan_songs(corpus, "train")
    assert [s.split for s in songs] == ["train"] * 3
    cfg = ClapTrainConfig(batch_size=4, mixture_prob=0.3, prompts_per_item=5)
    bank, labels = PromptBank(), {}
    ds = ClapCorpusDataset(songs, TINY, cfg, bank, labels, length=50, seed=3)
    bank2 = PromptBank()
    again = ClapCorpusDataset(songs, TINY, cfg, bank2, {}, length=50, seed=3)
    assert len(ds) == 50 and len(ds.stem_items) == 6 and len(ds.mix_items) == 3
    assert bank.texts == bank2.texts
    for i in (0, 7, 49):
        a, p, lab = ds[i]
        b, q, lab2 = again[i]
        assert torch.equal(a, b) and p == q and lab == lab2
        assert a.shape == (TINY.window_samples,) and a.dtype == torch.float32
        assert float(a.abs().max()) > 1e-3  # not a silent crop
    assert len({ds[i][1] for i in range(50)}) > 5  # varied prompts
    # the two bass stems share a label (same instrument), so the loss treats them as matches
    bass_labels = {it.label for it in ds.stem_items if it.key == "bass"}
    assert len(bass_labels) == 1
    with pytest.raises(DatasetError):
        scan_songs(corpus / "nope", "train")
    with pytest.raises(DatasetError, match="split"):
        scan_songs(corpus, "holdout")


def test_evaluate_reports_chance_rates(corpus):
    torch.manual_seed(0)
    model = BuiltinClap(TINY)
    result = evaluate_clap(model, corpus, "test")
    assert result["stems"] == 5 and result["songs"] == 2
    assert result["family"]["classes"] == 3 and result["family"]["chance_top1"] == pytest.approx(1 / 3)
    assert result["family"]["top5"] == 1.0  # 3 classes: top-5 always holds the answer
    assert result["retrieval"]["chance_r1"] == pytest.approx(0.2)
    assert 0.0 <= result["retrieval"]["r1"] <= 1.0
    text = format_clap_report(result)
    assert "zero-shot family" in text and "R@1" in text


def _args(corpus, out, config, **kw) -> argparse.Namespace:
    return parse_options(clap_arguments, corpus=corpus, out=out, config=config, **kw)


def test_train_command_runs_resumes_and_exports(corpus, tmp_path, capsys):
    from diffariff.checkpoint import config_to_dict, read_checkpoint_metadata

    cfg = ClapRunConfig(model=TINY, train=ClapTrainConfig(
        batch_size=4, max_steps=3, warmup_steps=1, val_samples=4, val_every=2, checkpoint_every=2,
        prompts_per_item=3, ema_decay=0.9))
    config = tmp_path / "clap_tiny.json"
    config.write_text(json.dumps(config_to_dict(cfg)))
    out = tmp_path / "run"
    assert run(_args(corpus, out, config)) == 0
    meta = read_checkpoint_metadata(out / "clap.safetensors")
    assert json.loads(meta["extra"])["step"] == 3
    assert (out / "checkpoints" / "last.ckpt").is_file()
    result = json.loads((out / "eval.json").read_text())
    assert result["split"] == "test" and result["stems"] == 5
    assert "zero-shot instrument" in capsys.readouterr().out
    # same command with more steps continues from last.ckpt
    assert run(_args(corpus, out, config, max_steps=5)) == 0
    assert json.loads(read_checkpoint_metadata(out / "clap.safetensors")["extra"])["step"] == 5
    model = BuiltinClap.load(out / "clap.safetensors")
    emb = model.embed_text(["bass"])
    assert emb.shape == (1, 32)
    assert json.loads((out / "run_config.json").read_text())["train"]["max_steps"] == 5


def test_shipped_small_config_parses():
    from pathlib import Path

    from diffariff.checkpoint import load_config_file

    path = Path(__file__).resolve().parents[2] / "configs" / "clap_small.json"
    cfg = load_config_file(ClapRunConfig, path)
    model = BuiltinClap(cfg.model)
    assert model.num_parameters() < 6_000_000
    assert cfg.train.batch_size >= 16
    random.seed(0)
