"""Production of a song (per-stem chains, shared room, bus dynamics, loudness) and its corpus hook.

The song is real FluidSynth audio rendered dry, as a produced corpus renders it (drums, bass, piano,
guitar, pad from the small GM soundfont); the effect measurements use synthesised signals whose dry
form is known exactly (a tone burst followed by digital silence, a pure sine).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from diffariff.data.synth import production as prod
from diffariff.data.synth.corpus import build_corpus, song_is_complete
from diffariff.data.synth.dynamics import compressor_gain, fast_loudness_lufs, limiter_gain, loudness_lufs
from diffariff.data.synth.metadata import validate_metadata
from diffariff.data.synth.midi import write_part_midi
from diffariff.data.synth.notes import Note
from diffariff.data.synth.production import LOUDNESS_RANGE, PLUGINS, produce_song
from diffariff.data.synth.render import available_soundfonts, render_midi
from diffariff.errors import DatasetError

SR = 48_000
SECONDS = 3.0
N = int(SECONDS * SR)
ROLES = {"drums": "drums", "bass": "bass", "piano": "chords", "guitar": "lead", "pad": "pad"}
FAMILIES = {"drums": "drums", "bass": "bass", "piano": "piano", "guitar": "guitar", "pad": "synth pad"}
#: The small GM soundfont loads fastest.
FONT = str(available_soundfonts()[-1])


def _render(folder, program: int, pitches: list[int], beats: float = 0.5, drum: bool = False) -> np.ndarray:
    """One part at 120 bpm, a note every ``beats``, rendered dry (no FluidSynth reverb), 3 s long."""
    notes = [Note(i * beats, 0.9 * beats, p, 70 + (i * 13) % 50) for i, p in enumerate(pitches)]
    midi = folder / f"part{program}{drum}.mid"
    write_part_midi(midi, notes, program=program, is_drum=drum, tempo=120.0, meter=(4, 4), reverb=0)
    audio = render_midi(midi, FONT, SR, reverb=False)[:, :N]
    return np.pad(audio, ((0, 0), (0, N - audio.shape[1])))


@pytest.fixture(scope="module")
def stems(tmp_path_factory):
    """A small real multitrack: FluidSynth renders of five GM parts, 3 s each, peaks at 0.1."""
    tmp = tmp_path_factory.mktemp("parts")
    parts = {
        "drums": _render(tmp, 0, [36, 42, 38, 42] * 3, drum=True),
        "bass": _render(tmp, 33, [40, 40, 43, 45, 40, 40, 47, 45, 40, 38, 40, 43]),
        "piano": _render(tmp, 0, [60, 64, 67, 64, 62, 65, 69, 65, 60, 64, 67, 72]),
        "guitar": _render(tmp, 27, [64, 67, 69, 71, 72, 71, 69, 67, 64, 62, 64, 67]),
        "pad": _render(tmp, 89, [52, 55, 59, 57], beats=1.5),
    }
    for name, audio in parts.items():
        assert audio.shape == (2, N) and np.sqrt(np.mean(audio**2)) > 1e-3, name
    return {k: (a * np.float32(0.1 / np.max(np.abs(a)))).astype(np.float32) for k, a in parts.items()}


def _produce(stems, seed, **kw):
    return produce_song(stems, {k: ROLES.get(k, "lead") for k in stems}, np.random.default_rng(seed), SR,
                        {k: FAMILIES.get(k, "") for k in stems}, **kw)


@pytest.fixture(scope="module")
def produced(stems):
    return {seed: _produce(stems, seed, tempo=120.0) for seed in (0, 1, 2)}


def test_mixture_is_the_exact_sum_and_nothing_clips(stems, produced):
    for seed, (out, mix, desc) in produced.items():
        assert list(out) == list(stems)
        assert mix.dtype == np.float32 and mix.shape == (2, N)
        total = np.sum([out[k].astype(np.float64) for k in out], axis=0)
        assert np.max(np.abs(total - mix)) <= 1e-6, seed  # float32 rounding of the sum only
        for name, audio in out.items():
            assert audio.dtype == np.float32 and audio.shape == (2, N)
            assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 0.99, (seed, name)
            assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 1e-4, (seed, name)  # still audible
        assert np.max(np.abs(mix)) <= 10 ** (desc["bus"]["limiter"]["ceiling_db"] / 20) + 1e-6 < 0.99
        assert np.max(np.abs(mix)) > 0.1
        assert np.all(np.abs(mix[:, -8:]) < 1e-3)  # faded at the cut: reverb tails end cleanly


def test_deterministic_given_rng_and_different_for_another(stems, produced):
    out, mix, desc = _produce(stems, 0, tempo=120.0)
    ref_out, ref_mix, ref_desc = produced[0]
    assert desc == ref_desc and np.array_equal(mix, ref_mix)
    assert all(np.array_equal(out[k], ref_out[k]) for k in out)
    other_out, other_mix, other_desc = produced[1]
    assert other_desc != desc and not np.allclose(other_mix, mix, atol=1e-3)
    assert len({produced[s][2]["bus"]["target_lufs"] for s in produced}) == 3


def test_loudness_lands_on_the_drawn_target(stems, produced):
    for seed, (_, mix, desc) in produced.items():
        target = desc["bus"]["target_lufs"]
        assert LOUDNESS_RANGE[0] <= target <= LOUDNESS_RANGE[1]
        assert abs(loudness_lufs(mix, SR) - target) <= 1.0, seed
        assert abs(desc["bus"]["loudness_lufs"] - loudness_lufs(mix, SR)) < 0.01


@pytest.mark.parametrize("target", [-9.0, -20.0])
def test_loudness_at_the_ends_of_the_range(stems, monkeypatch, target):
    """The loudest target needs the limiter to do real work and must still land, under the ceilings."""
    monkeypatch.setattr(prod, "LOUDNESS_RANGE", (target, target))
    out, mix, desc = _produce(stems, 5)
    assert desc["bus"]["target_lufs"] == target
    assert abs(loudness_lufs(mix, SR) - target) <= 1.0
    assert np.max(np.abs(mix)) <= 0.99 and max(float(np.max(np.abs(a))) for a in out.values()) <= 0.99
    if target == -9.0:
        assert desc["bus"]["limiter"]["max_reduction_db"] > 1.0


def test_description_round_trips_through_json_and_rebuilds(stems, produced):
    _, _, desc = produced[0]
    again = json.loads(json.dumps(desc))
    assert again == desc
    assert set(again["stems"]) == set(stems)
    for name, chain in again["stems"].items():
        assert chain["role"] == ROLES[name] and chain["bypassed"] is False
        entries = chain["source"] + chain["inserts"]
        assert entries and all(e["type"] in PLUGINS for e in entries)
        for entry in entries:  # the parameters stored are the ones the plugin takes (and gets back)
            plugin = prod._plugin(entry)
            for key, value in entry.items():
                if key not in ("type", "purpose"):
                    assert getattr(plugin, key) == pytest.approx(value, rel=1e-3, abs=1e-3), (name, key)
        hp = [e["cutoff_frequency_hz"] for e in chain["inserts"] if e["type"] == "HighpassFilter"]
        assert hp and (max(hp) <= 45 if chain["role"] in ("drums", "bass") else min(hp) >= 70)
    for key in ("compressor", "limiter"):
        assert {"attack_ms", "release_ms", "mean_reduction_db", "max_reduction_db"} <= set(again["bus"][key])
    assert {"room_size", "damping", "predelay_ms", "gain_db"} <= set(again["room"])


def test_chains_follow_roles_over_many_songs():
    """Over many draws: guitars are often driven, pads often get chorus, leads often delays, drums never
    chorus or delay; pans of drums and bass stay central."""
    rng = np.random.default_rng(0)
    seen = {"guitar amp": 0, "pad chorus": 0, "lead delay": 0, "drums time fx": 0}
    for _ in range(200):
        g = prod._draw_stem(rng, "lead", "guitar", 100.0, None)
        p = prod._draw_stem(rng, "pad", "synth pad", 100.0, None)
        d = prod._draw_stem(rng, "drums", "drums", 100.0, None)
        seen["guitar amp"] += any(e["type"] == "Distortion" for e in g["source"])
        seen["pad chorus"] += any(e["type"] == "Chorus" for e in p["inserts"])
        seen["lead delay"] += any(e["type"] == "Delay" for e in g["inserts"])
        seen["drums time fx"] += any(e["type"] in ("Chorus", "Delay") for e in d["inserts"])
        assert d["pan"] == 0.0 and -0.8 <= p["pan"] <= 0.8
        delay = [e["delay_seconds"] for e in g["inserts"] if e["type"] == "Delay"]
        assert all(round(x / 0.6 * 12) == pytest.approx(x / 0.6 * 12, abs=1e-2) for x in delay)  # synced
    assert seen["guitar amp"] > 70 and seen["pad chorus"] > 70 and seen["lead delay"] > 70
    assert seen["drums time fx"] == 0


def test_silent_stems_stay_silent(stems):
    with_silence = dict(stems, silent=np.zeros((2, N), np.float32))
    out, mix, desc = _produce(with_silence, 3)
    assert not np.any(out["silent"]) and desc["stems"]["silent"]["bypassed"] is True
    assert np.all(np.isfinite(mix)) and np.max(np.abs(np.sum(list(out.values()), axis=0) - mix)) <= 1e-6
    json.dumps(desc)
    out, mix, desc = _produce({"a": np.zeros((2, N), np.float32), "b": np.zeros((2, N), np.float32)}, 3)
    assert not np.any(mix) and not any(np.any(a) for a in out.values())
    assert desc["bus"]["loudness_lufs"] is None


def _burst(freq: float, on_seconds: float, level: float = 0.3) -> np.ndarray:
    """A mono-centred tone burst (10 ms fades) followed by digital silence, 3 s in all."""
    t = np.arange(N) / SR
    env = np.clip(np.minimum(t / 0.01, (on_seconds - t) / 0.01), 0.0, 1.0)
    x = (level * env * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x, x])


def _no_time_effects(monkeypatch, role: str, **extra) -> None:
    for key, value in {"chorus_p": 0.0, "delay_p": 0.0, **extra}.items():
        monkeypatch.setitem(prod._RECIPES[role], key, value)


@pytest.mark.parametrize("send", [True, False])
def test_reverb_lengthens_the_decay(monkeypatch, send):
    """Energy after note-off: the dry burst has none; with the room's return it is there and decays."""
    _no_time_effects(monkeypatch, "pad", send_p=1.0 if send else 0.0)
    off = 1.0
    out, _, desc = produce_song({"pad": _burst(330.0, off)}, {"pad": "pad"}, np.random.default_rng(4), SR)
    y = out["pad"].astype(np.float64)
    note = np.mean(y[:, int(0.2 * SR): int(0.9 * SR)] ** 2)
    early = np.mean(y[:, int((off + 0.05) * SR): int((off + 0.3) * SR)] ** 2)
    late = np.mean(y[:, int((off + 0.8) * SR): int((off + 1.2) * SR)] ** 2)
    if send:
        assert desc["stems"]["pad"]["send_db"] is not None
        assert 10 * np.log10(early / note) > -40.0  # a tail of the room, not silence
        assert late < early  # and it decays
    else:
        assert desc["stems"]["pad"]["send_db"] is None
        assert early <= note * 1e-8  # without a send nothing rings on


@pytest.mark.parametrize("seed", [4, 6])
@pytest.mark.parametrize("drive", [True, False])
def test_amp_adds_harmonics(monkeypatch, drive, seed):
    """A pure sine through a lead's chain: with the amp, harmonics appear (tanh: odd ones); without it
    (EQ and compressor only) they stay far lower."""
    _no_time_effects(monkeypatch, "lead", drive_p=1.0 if drive else 0.0, send_p=0.0)
    freq = 250.0  # whole cycles in the analysis window
    rng = np.random.default_rng(seed)
    lead = {"lead": _burst(freq, SECONDS)}
    out, _, desc = produce_song(lead, {"lead": "lead"}, rng, SR, {"lead": "synth lead"})
    assert any(e["type"] == "Distortion" for e in desc["stems"]["lead"]["source"]) == drive
    seg = out["lead"][0, SR: 2 * SR].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size))) ** 2
    bin_of = lambda f: int(round(f * seg.size / SR))  # noqa: E731
    power = lambda f: spec[bin_of(f) - 3: bin_of(f) + 4].sum()  # noqa: E731
    harmonics = sum(power(k * freq) for k in range(2, 10)) / power(freq)
    assert harmonics > 2e-4 if drive else harmonics < 1e-4


def test_pan_places_the_stem(monkeypatch):
    _no_time_effects(monkeypatch, "lead", send_p=0.0, drive_p=0.0)
    rng = np.random.default_rng(2)
    lead = {"lead": _burst(440.0, SECONDS)}
    out, _, desc = produce_song(lead, {"lead": "lead"}, rng, SR, pans={"lead": -0.8})
    left, right = (np.mean(out["lead"][c].astype(np.float64) ** 2) for c in (0, 1))
    assert desc["stems"]["lead"]["pan"] == -0.8
    assert 10 * np.log10(left / right) > 10.0  # constant-power law at -0.8: cot^2(0.05 pi) = 16 dB


def test_fast_meter_agrees_with_pyloudnorm(produced):
    """The bus search's vectorised BS.1770 meter against pyloudnorm (whose K-weighting design differs
    by a few hundredths of a LU)."""
    rng = np.random.default_rng(1)
    for seed, (_, mix, _) in produced.items():
        assert fast_loudness_lufs(mix, SR) == pytest.approx(loudness_lufs(mix, SR), abs=0.1), seed
    for sr in (44_100, 48_000):
        noise = rng.standard_normal((2, 4 * sr)) * np.linspace(0.01, 0.3, 4 * sr)
        assert fast_loudness_lufs(noise, sr) == pytest.approx(loudness_lufs(noise, sr), abs=0.1), sr
    assert fast_loudness_lufs(np.zeros((2, SR)), SR) == -np.inf


def test_limiter_gain_never_exceeds_what_each_sample_allows():
    rng = np.random.default_rng(0)
    need = np.ones(SR)
    spikes = rng.integers(0, SR, 40)
    need[spikes] = rng.uniform(0.1, 0.9, spikes.size)
    g = limiter_gain(need, SR, attack_ms=2.0, release_ms=80.0)
    assert np.all(g <= need) and np.all(g > 0)
    assert np.max(np.abs(np.diff(g))) < 0.05  # ramps, not steps
    quiet = limiter_gain(np.ones(SR), SR, 2.0, 80.0)
    assert np.all(quiet == 1.0)


def test_compressor_static_curve_and_release():
    """A steady sine 12 dB (RMS) over the threshold at ratio 4 is reduced by 9 dB (hard knee); after it
    stops the gain recovers."""
    t = np.arange(SR) / SR
    level_db = -12.0  # mean square of the sine, dBFS
    amp = np.sqrt(2) * 10 ** (level_db / 20)
    x = np.where(t < 0.5, amp * np.sin(2 * np.pi * 200 * t), 0.0)
    g = compressor_gain(np.stack([x, x]), SR, threshold_db=-24.0, ratio=4.0, knee_db=0.0, attack_ms=5.0,
                        release_ms=50.0)
    assert -20 * np.log10(g[int(0.4 * SR)]) == pytest.approx(9.0, abs=0.3)
    assert g[0] > 0.95  # the attack takes time
    assert g[-1] == pytest.approx(1.0, abs=1e-3)  # and the release gives the gain back


def test_bad_input_is_refused(stems):
    from diffariff.errors import InputError

    with pytest.raises(InputError, match="role"):
        produce_song({"x": stems["bass"]}, {"x": "vocals"}, np.random.default_rng(0), SR)
    with pytest.raises(InputError, match="non-finite"):
        bad = stems["bass"].copy()
        bad[0, 5] = np.nan
        produce_song({"x": bad}, {"x": "bass"}, np.random.default_rng(0), SR)
    with pytest.raises(InputError, match=r"\[2, "):
        produce_song({"x": stems["bass"], "y": stems["bass"][:, :-1]}, {"x": "bass", "y": "bass"},
                     np.random.default_rng(0), SR)


def test_corpus_hook_writes_a_produced_song(tmp_path):
    """build_corpus(produce=True): real FluidSynth song, valid metadata with the production, files summing
    to the mixture, loudness on target; a corpus without production refuses to mix with it."""
    font = FONT
    (folder,) = build_corpus(tmp_path, 1, SECONDS, seed=11, soundfont=font, progress=False, produce=True)
    meta = json.loads((folder / "metadata.json").read_text())
    validate_metadata(meta, folder)
    chain = meta["production"]
    assert set(chain["stems"]) == set(meta["stems"])
    assert all(chain["stems"][k]["pan"] == meta["stems"][k]["pan"] for k in meta["stems"])
    stems = {k: sf.read(folder / s["file"], dtype="float64", always_2d=True)[0].T
             for k, s in meta["stems"].items()}
    mix = sf.read(folder / meta["mixture"], dtype="float64", always_2d=True)[0].T
    assert np.max(np.abs(np.sum(list(stems.values()), axis=0) - mix)) <= (len(stems) + 1) * 2.0**-23
    assert np.max(np.abs(mix)) <= 0.99 and all(np.max(np.abs(s)) <= 0.99 for s in stems.values())
    assert abs(loudness_lufs(mix, SR) - chain["bus"]["target_lufs"]) <= 1.0
    assert song_is_complete(folder, 11, 0, SECONDS, font, produce=True)
    with pytest.raises(DatasetError, match="production"):
        song_is_complete(folder, 11, 0, SECONDS, font)
