"""The synth codec (codec v2): its synthesisers render the pitches and levels they are given, the codec
is chunk-exact, seeded, saves and loads, refuses bad input, trains on rendered notes, and the
``diffariff train synth-codec`` / ``diffariff reconstruct`` commands work end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from diffariff.checkpoint import load_checkpoint
from diffariff.cli import main
from diffariff.codec import SynthCodec, SynthCodecConfig, load_codec
from diffariff.codec.synth import NoiseSynth, OscillatorBank, bank_frequencies
from diffariff.codec.synth_codec import DECODER_PREFIXES
from diffariff.diffusion.model import model_identity
from diffariff.errors import ConfigError, EmptyAudioError, NonFiniteAudioError
from diffariff.eval.musical_fit import key_fit
from diffariff.eval.reconstruction import grid_energy_share
from diffariff.train.synth_codec import SynthCodecModule, bank_level_loss, partial_targets

SR = 48_000
TINY = dict(enc_channels=(32, 32, 32), dec_channels=(48, 32, 32, 32), blocks=1, latent_dim=16,
            chunk_context_frames=4)
TINY_GRID = dict(TINY, nets="grid", chunk_context_frames=8, grid_enc_channels=(16, 16, 16), grid_mel_channels=32,
                 grid_dec_channels=(16, 16, 16))


def _wake(codec: SynthCodec) -> None:
    """Raise the decoder's output bias so an untrained codec's output is not all ~zero."""
    with torch.no_grad():
        heads = [codec.decoder.head] if codec.config.nets == "conv1d" else [codec.decoder.pitch_head,
                                                                            codec.decoder.noise[-1]]
        for head in heads:
            head.bias.fill_(-3.0)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / SR)[spec.argmax()])


def test_bank_renders_each_oscillator_at_its_pitch_and_level():
    bank = OscillatorBank(SR, 256, 21, 114, 3)
    freqs = bank_frequencies(21, 114, 3)
    assert bank.size == freqs.size == 280 and freqs[0] == pytest.approx(27.5)
    for k, level in ((0, 0.3), (100, 0.5), (200, 0.1)):  # 27.5 Hz, ~86 Hz off the 23.4 Hz grid, ~1.2 kHz
        amps = torch.zeros(1, bank.size, 400)
        amps[0, k] = level
        y = bank(amps)[0].numpy()[20_000:90_000]
        assert _peak_hz(y) == pytest.approx(freqs[k], abs=1.0)
        assert y.std() * math.sqrt(2) == pytest.approx(level, rel=0.01)  # a steady sine of that amplitude
    # a bass note between two bins of a 2048-point STFT is not pulled onto the bin grid
    amps = torch.zeros(1, bank.size, 400)
    amps[0, 3 * (36 - 21)] = 0.5  # C2, 65.4 Hz: 2.79 bins of 23.44 Hz
    assert grid_energy_share(bank(amps)[0].numpy()) < 0.01


def test_bank_levels_cross_fade_between_control_frames():
    bank = OscillatorBank(SR, 256, 21, 114, 3)
    amps = torch.zeros(1, bank.size, 40)
    amps[0, 150, 20:] = 1.0  # on from control frame 20 (sample 5120), with a Hann ramp of one hop before it
    y = bank(amps)[0].numpy()
    assert np.abs(y[: 19 * 256]).max() < 1e-6
    assert np.abs(y[21 * 256:]).max() == pytest.approx(1.0, abs=0.01)


def test_noise_synth_is_unit_white_noise_at_gain_one_and_follows_band_gains():
    noise = NoiseSynth(SR, 256, 64)
    flat = noise(torch.ones(1, 64, 400))[0].numpy()
    assert flat.std() == pytest.approx(1.0, rel=0.03)
    gains = torch.zeros(1, 64, 400)
    gains[0, :20] = 1.0  # the lowest 20 mel bands only
    low = noise(gains)[0].numpy()
    spec = np.abs(np.fft.rfft(low)) ** 2
    freqs = np.fft.rfftfreq(low.size, 1 / SR)
    assert spec[freqs > 6000].sum() < 1e-3 * spec.sum()
    # keyed to position: a span rendered from sample 25 600 equals that span of the whole render
    part = noise(torch.ones(1, 64, 100), first_sample=100 * 256)[0].numpy()
    assert np.allclose(part[512:-512], flat[100 * 256 + 512: 200 * 256 - 512], atol=1e-5)


@pytest.mark.parametrize("nets", [TINY, TINY_GRID], ids=["conv1d", "grid"])
def test_codec_shapes_chunking_seeds_and_persistence(tmp_path, nets):
    torch.manual_seed(0)
    codec = SynthCodec(SynthCodecConfig(**nets)).eval()
    _wake(codec)
    x = torch.randn(1, 2, 3 * SR + 77) * 0.1
    z = codec.encode(x, chunk_seconds=math.inf)
    assert z.shape == (1, 16, math.ceil((3 * SR + 77) / 2048)) and z.abs().max() < 1
    assert torch.allclose(codec.encode(x, chunk_seconds=0.5), z, atol=1e-5)  # chunked == whole
    y = codec.decode(z, seed=3, chunk_seconds=math.inf)
    assert y.shape == (1, 1, z.shape[-1] * 2048) and y.abs().max() > 1e-3
    assert torch.allclose(codec.decode(z, seed=3, chunk_seconds=0.5), y, atol=1e-4 * float(y.abs().max()))
    assert torch.equal(codec.decode(z, seed=3), codec.decode(z, seed=3))
    other = codec.decode(z, seed=4)
    assert (other - y).square().mean() > 0.1 * y.square().mean()  # another seed: another phase / noise draw
    stereo = codec.decode_pseudo_stereo(z, width=0.5, seed=3, length=3 * SR + 77)
    assert stereo.shape == (1, 2, 3 * SR + 77) and not torch.allclose(stereo[:, 0], stereo[:, 1])
    path = codec.save(tmp_path / "c.safetensors", dtype=torch.float16)
    back = load_codec(path)
    assert isinstance(back, SynthCodec) and back.config == codec.config
    assert torch.allclose(back.encode(x), z, atol=2e-2)


def test_partial_targets_find_the_oscillators_and_levels_of_a_rendered_chord_and_not_of_noise(render_notes):
    codec = SynthCodec(SynthCodecConfig(**TINY))
    k, frames = codec.bank.size, 64
    amps = torch.zeros(1, k, frames)
    chord = {20: 0.2, 100: 0.1, 150: 0.05, 200: 0.02}  # 40 Hz, 188 Hz, 492 Hz, 1.3 kHz
    for osc, amp in chord.items():
        amps[0, osc] = amp
    targets = partial_targets(codec, codec.bank(amps, seed=3))
    mid = targets[0, :, frames // 4]  # feature frames are 2 control frames
    assert torch.nonzero(torch.isfinite(mid)).flatten().tolist() == sorted(chord)
    assert np.allclose([float(mid[o]) for o in sorted(chord)], np.log([chord[o] for o in sorted(chord)]), atol=0.05)
    # the loss is ~0 when the decoder's levels are the chord's, and grows when a partial is missing
    controls = torch.full((1, k + codec.config.noise_bands, frames), -12.0)
    for osc, amp in chord.items():
        controls[0, osc] = math.log(amp)
    assert float(bank_level_loss(codec, controls, targets)) < 0.01
    controls[0, 100] = -12.0
    assert float(bank_level_loss(codec, controls, targets)) > 1.0
    noise = partial_targets(codec, torch.randn(1, frames * 256, generator=torch.Generator().manual_seed(0)) * 0.1)
    assert torch.isfinite(noise).sum() < 0.2 * noise.shape[-1]  # white noise: almost no partials
    bass = torch.from_numpy(render_notes(33, [36, 43, 40, 45], seconds=1.5)[0])[None]
    found = torch.isfinite(partial_targets(codec, bass)).sum(dim=1)
    assert float(found.float().median()) >= 3  # a rendered bass line: its harmonics


def test_codec_refuses_bad_input_and_handles_tiny_and_silent_audio():
    codec = SynthCodec(SynthCodecConfig(**TINY)).eval()
    with pytest.raises(NonFiniteAudioError):
        codec.encode(torch.full((1, 1, 4096), float("nan")))
    with pytest.raises(EmptyAudioError):
        codec.encode(torch.zeros(1, 1, 0))
    one = codec.reconstruct(torch.ones(1, 1, 1) * 0.5)
    assert one.shape == (1, 1, 1) and torch.isfinite(one).all()
    silent = codec.reconstruct(torch.zeros(1, 2, SR))
    assert torch.isfinite(silent).all() and silent.abs().max() < 0.05
    clipped = codec.reconstruct(torch.ones(1, 1, SR) * 4.0)
    assert torch.isfinite(clipped).all()
    with pytest.raises(ConfigError):
        SynthCodecConfig(latent_hop=4096)
    with pytest.raises(ConfigError):
        SynthCodecConfig(nets="grid", decoder="stftmag")
    with pytest.raises(ConfigError):
        SynthCodecConfig(nets="unet")


@pytest.mark.parametrize("nets, train, steps", [(TINY, {}, 40), (TINY_GRID, {"w_bank_shape": 1.0, "w_bank_level": 1.0}, 60)],
                         ids=["conv1d", "grid"])
def test_training_steps_learn_the_notes_of_rendered_audio(render_notes, nets, train, steps):
    torch.manual_seed(0)
    module = SynthCodecModule(dict(nets), train)
    keys = render_notes(0, [60, 64, 67, 72, 71, 67], seconds=1.5)[0]
    bass = render_notes(33, [36, 43, 40, 45, 38, 41], seconds=1.5)[0]
    x = torch.from_numpy(np.stack([keys, bass])[:, : 16 * 2048])[:, None]
    opt = torch.optim.Adam(module.codec.parameters(), 3e-3)
    losses = []
    for _ in range(steps):
        loss = module.loss(module.codec, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    with torch.no_grad():
        y = module.codec.reconstruct(x)
    # the pitch classes of both clips come back (an untrained codec scores near zero)
    assert min(key_fit(y[i].numpy(), x[i].numpy(), SR) for i in range(2)) > 0.5


def test_train_and_reconstruct_commands_end_to_end(render_notes, tmp_path, capsys):
    data = tmp_path / "corpus"
    for i, (prog, pitches) in enumerate([(0, [60, 64, 67]), (33, [36, 40, 43])]):
        song = data / f"song_{i}"
        song.mkdir(parents=True)
        sf.write(song / "keys.flac", render_notes(prog, pitches, seconds=1.0).T, SR)
        sf.write(song / "bass.flac", render_notes(33, [p - 24 for p in pitches], seconds=1.0).T, SR)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    run_dir = tmp_path / "run"
    argv = ["train", "synth-codec", "--data", str(data), "--out", str(run_dir), "--config", str(cfg),
            "--max-steps", "2", "--train-set", "batch_size=2", "crop_seconds=0.5", "eval_every=1",
            "eval_seconds=0.5", "eval_clips=2"]
    assert main(argv) == 0
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step") and "heldout_pitch_class" in rows[0] and len(rows) >= 3
    export = run_dir / "synth_codec.safetensors"
    assert isinstance(load_codec(export), SynthCodec)
    assert main(argv + ["--resume", "--max-steps", "3"]) == 0
    # a decoder fine-tune on frozen latents keeps the codec's identity (latent models stay valid)
    tuned = tmp_path / "tuned.safetensors"
    fine = ["train", "synth-codec", "--data", str(data), "--out", str(tmp_path / "run_dec"), "--init", str(export),
            "--max-steps", "3", "--export", str(tuned), "--train-set", "batch_size=2", "crop_seconds=0.5",
            "eval_every=1", "eval_seconds=0.5", "eval_clips=2", "lr=0.01", "warmup_steps=0"]
    assert main(fine + ["--freeze-encoder"]) == 0
    assert model_identity(tuned) == model_identity(export)
    a, b = load_checkpoint(export).tensors, load_checkpoint(tuned).tensors
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith(DECODER_PREFIXES))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("decoder."))
    assert main(fine[:-2] + ["--set", "latent_dim=8"]) == 2  # an encoder-side change with --init
    assert main(argv[:-8] + ["--freeze-encoder", "--out", str(tmp_path / "run_bad")]) == 2  # nothing to keep
    capsys.readouterr()
    # reconstruct: same length and sample rate as the input (44.1 kHz in, 44.1 kHz out)
    src = tmp_path / "in.wav"
    sf.write(src, render_notes(0, [60, 62], seconds=0.8).T[: int(0.8 * 44_100)], 44_100)
    out = tmp_path / "out.wav"
    assert main(["reconstruct", str(src), "-o", str(out), "--codec", str(export), "--width", "0.4"]) == 0
    info, ref = sf.info(out), sf.info(src)
    assert info.samplerate == 44_100 and info.frames == ref.frames and info.channels == 2
    before = src.read_bytes()
    assert main(["reconstruct", str(src), "-o", str(src), "--codec", str(export)]) == 2  # never over the input
    assert src.read_bytes() == before
    assert "refusing" in capsys.readouterr().err


def test_shipped_synth_codec_keeps_the_notes_and_level_of_rendered_phrases(render_notes):
    from diffariff.bundle import codec_path

    codec = load_codec(codec_path("v2"))
    assert isinstance(codec, SynthCodec) and codec.config.nets == "grid"
    phrases = {"keys": (0, [60, 64, 67, 72, 71, 67, 65, 62]), "bass": (33, [36, 43, 40, 45, 38, 41, 36, 43]),
               "violin": (40, [76, 74, 72, 71, 69, 67, 69, 71])}
    for name, (program, pitches) in phrases.items():
        x = render_notes(program, pitches, seconds=2.5)
        y = codec.reconstruct(torch.from_numpy(x)[None], seed=0)[0, 0].numpy()
        mono = x.mean(axis=0)
        assert key_fit(y, mono, SR) > 0.75, name  # the first codec: 0.1-0.5 on such phrases
        level_db = 10 * np.log10(np.mean(y**2) / np.mean(mono**2))
        assert abs(level_db) < 3.0, (name, level_db)
        assert grid_energy_share(y, SR) < 0.25, name  # no comb at the 23.4 Hz bin grid (first codec: 0.6-0.9)
