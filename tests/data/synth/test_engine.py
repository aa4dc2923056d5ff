"""The in-process FluidSynth engine and the soundfont registry: real renders, real soundfonts.

Pitches are read back from the audio (the spectral peak of each note), onsets from the envelope,
and the engine is checked against the fluidsynth command line on the same MIDI file.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import mido
import numpy as np
import pytest

from diffariff.data.synth import engine as eng_mod
from diffariff.data.synth.engine import Event, get_engine, midi_events, part_events, render_midi_engine
from diffariff.data.synth.midi import write_part_midi
from diffariff.data.synth.notes import Note
from diffariff.data.synth.render import (
    available_soundfonts,
    find_soundfont,
    is_reserved,
    render_midi,
    training_soundfonts,
)
from diffariff.errors import InputError

SR = 48_000
SMALL = next((s.path for s in training_soundfonts(("gm",)) if s.name == "TimGM6mb"), None)
DRUMS_ONLY = [s.path for s in training_soundfonts(("drums-only",))]
pytestmark = pytest.mark.skipif(SMALL is None, reason="timgm6mb-soundfont is not installed")

#: (onset seconds, MIDI pitch): separated notes, each 0.3 s long.
PHRASE = [(0.25, 69), (0.85, 76), (1.45, 64), (2.05, 72)]


def _phrase_events(program: int = 73) -> list[Event]:
    evs = [Event(0.0, "program", 0, program)]
    for t, p in PHRASE:
        evs += [Event(t, "note_on", 0, p, 100), Event(t + 0.3, "note_off", 0, p)]
    return evs


def _phrase_midi(path: Path, program: int = 73) -> Path:
    mid = mido.MidiFile(ticks_per_beat=480)  # 120 qpm: 960 ticks per second
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.Message("program_change", program=program, time=0))
    now = 0
    for t, p in PHRASE:
        on, off = int(round(t * 960)), int(round((t + 0.3) * 960))
        track.append(mido.Message("note_on", note=p, velocity=100, time=on - now))
        track.append(mido.Message("note_off", note=p, velocity=0, time=off - on))
        now = off
    mid.save(str(path))
    return path


def _peak_hz(audio: np.ndarray, t0: float, t1: float) -> float:
    x = audio.mean(axis=0)[int(t0 * SR):int(t1 * SR)]
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size), n=1 << 16))
    freqs = np.fft.rfftfreq(1 << 16, 1 / SR)
    band = (freqs > 80) & (freqs < 4000)
    return float(freqs[band][np.argmax(spec[band])])


def _onsets(audio: np.ndarray, hop: int = 120, gap: float = 0.3) -> list[float]:
    """Times where the 2.5-ms RMS envelope jumps (4x within 10 ms, above 5 % of its maximum), at
    least ``gap`` apart."""
    x = audio.mean(axis=0)
    n = x.size // hop
    env = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)) + 1e-6
    out: list[float] = []
    for i in range(4, n):
        if env[i] > 4 * env[i - 4] and env[i] > 0.05 * env.max() and (not out or i * hop / SR - out[-1] >= gap):
            out.append(i * hop / SR)
    return out


def _midi_hz(p: int) -> float:
    return 440.0 * 2 ** ((p - 69) / 12)


def test_engine_renders_the_right_pitches_at_the_right_times():
    audio = get_engine(SR).render(_phrase_events(), SMALL, seconds=2.6)
    assert audio.dtype == np.float32 and audio.shape == (2, int(2.6 * SR))
    for t, p in PHRASE:
        semis = 12 * np.log2(_peak_hz(audio, t + 0.05, t + 0.28) / _midi_hz(p))
        # the strongest partial is the fundamental or its octave, within 30 cents
        assert min(abs(semis), abs(semis - 12)) < 0.3, (p, semis)
    marimba = get_engine(SR).render(_phrase_events(12), SMALL, seconds=2.6)  # sharp attacks for the onsets
    onsets = _onsets(marimba)
    assert len(onsets) == len(PHRASE)
    for got, (t, _) in zip(onsets, PHRASE, strict=True):
        assert abs(got - t) < 0.005  # 5 ms (FluidSynth's block is 1.3 ms, the frames 2.5 ms)


def test_engine_matches_the_fluidsynth_command_line(tmp_path):
    midi = _phrase_midi(tmp_path / "phrase.mid", program=12)  # marimba: sharp onsets, clear pitch
    cli = render_midi(midi, SMALL, SR)
    ours = render_midi_engine(midi, SMALL, SR)
    n = min(cli.shape[1], ours.shape[1], int(2.6 * SR))
    a, b = cli[:, :n], ours[:, :n]
    assert len(_onsets(a)) == len(_onsets(b)) == len(PHRASE)
    assert _onsets(a) == pytest.approx(_onsets(b), abs=0.005)
    for t, _ in PHRASE:
        assert _peak_hz(a, t + 0.05, t + 0.28) == pytest.approx(_peak_hz(b, t + 0.05, t + 0.28), rel=0.01)
    # same library, same settings: after the command line's one-block (64-sample) latency the waveforms
    # agree to ~2 % RMS (the rest: FluidSynth prepares a sample's level on its first use in a process,
    # and every CLI render is a first use)
    lag = int(np.argmax(np.correlate(a[0, :SR], b[0, : SR - 256], mode="valid")))
    assert lag == 64
    diff = a[:, lag:] - b[:, : n - lag]
    assert np.sqrt(np.mean(diff**2)) < 0.05 * np.sqrt(np.mean(a**2))


def test_each_soundfont_is_loaded_once_per_process(tmp_path):
    midi = _phrase_midi(tmp_path / "phrase.mid", program=0)
    for _ in range(3):
        get_engine(SR).render(_phrase_events(0), SMALL, seconds=0.5)
        render_midi_engine(midi, SMALL, SR)
    assert eng_mod.LOAD_COUNTS[str(SMALL)] == 1


def _worker_loads(_: int) -> int:
    get_engine(SR).render(_phrase_events(0), SMALL, seconds=0.3)
    get_engine(SR).render(_phrase_events(40), SMALL, seconds=0.3)
    return eng_mod.LOAD_COUNTS[str(SMALL)]


def test_forked_workers_load_their_own_soundfont_once():
    get_engine(SR).font(SMALL)  # the parent has it loaded; children must not reuse its synthesiser
    inherited = eng_mod.LOAD_COUNTS[str(SMALL)]
    with mp.get_context("fork").Pool(2) as pool:
        counts = pool.map(_worker_loads, range(4), chunksize=1)
    assert all(c == inherited + 1 for c in counts)  # exactly one load per worker, however many tasks


def test_renders_depend_only_on_their_events():
    """Bit-identical whatever was rendered before. (The first time a process plays a sample, FluidSynth
    prepares it lazily, which moves that note by ~-90 dB: hence one render before the reference.)"""
    engine = get_engine(SR)
    engine.render(_phrase_events(), SMALL, seconds=1.0)
    first = engine.render(_phrase_events(), SMALL, seconds=1.0)
    engine.render([Event(0.0, "note_on", 0, 40, 127), Event(0.9, "cc", 0, 91, 127)], SMALL, seconds=0.95,
                  chorus=True)  # leaves a voice releasing and a full reverb behind
    again = engine.render(_phrase_events(), SMALL, seconds=1.0)
    assert np.array_equal(first, again)


def test_part_events_sound_like_the_part_midi_file(tmp_path):
    notes = [Note(0.0, 1.0, 60, 90), Note(1.0, 0.5, 64, 70), Note(1.5, 1.5, 67, 110)]
    write_part_midi(tmp_path / "p.mid", notes, program=24, is_drum=False, tempo=100.0, meter=(4, 4), pan=-0.3,
                    reverb=50)
    engine = get_engine(SR)
    engine.render(midi_events(tmp_path / "p.mid"), SMALL, seconds=2.0)  # first use of the samples
    from_file = engine.render(midi_events(tmp_path / "p.mid"), SMALL, seconds=2.0)
    direct = engine.render(part_events(notes, tempo=100.0, program=24, is_drum=False, pan=-0.3, reverb=50),
                           SMALL, seconds=2.0)
    assert np.max(np.abs(from_file - direct)) < 1e-6
    assert from_file[0].std() > from_file[1].std()  # panned left


@pytest.mark.skipif(not DRUMS_ONLY, reason="avldrums.lv2-soundfont is not installed")
def test_drum_only_banks_play_the_drum_channel_only():
    engine = get_engine(SR)
    kick = [Event(0.1, "program", 9, 0), Event(0.1, "note_on", 9, 36, 110), Event(0.3, "note_off", 9, 36)]
    assert np.sqrt(np.mean(engine.render(kick, DRUMS_ONLY[0], seconds=0.8) ** 2)) > 1e-3
    melodic = [Event(0.1, "note_on", 0, 60, 110), Event(0.5, "note_off", 0, 60)]
    # nothing but the reverb's anti-denormal offset (~1e-8)
    assert np.max(np.abs(engine.render(melodic, DRUMS_ONLY[0], seconds=0.8))) < 1e-6
    assert engine.resolve_preset(DRUMS_ONLY[0], 0, 0, 0) is None


def test_reserved_soundfonts_are_never_offered_for_training(tmp_path):
    fake = tmp_path / "MuseScore_General.sf3"
    fake.write_bytes(b"RIFF\0\0\0\0sfbk")
    alias = tmp_path / "default-GM.sf2"
    alias.symlink_to(fake)  # an alternative pointing at the reserved bank is reserved too
    assert is_reserved(fake) and is_reserved(alias) and is_reserved("/x/MuseScore_General-Lite.sf2")
    assert not is_reserved(SMALL)
    offered = available_soundfonts("all") + [s.path for s in training_soundfonts()]
    assert offered and not any(is_reserved(p) for p in offered)
    assert not is_reserved(find_soundfont(None))
    installed = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
    if installed.exists():  # installed here (an alternative link): still reserved, never offered
        assert is_reserved(installed) and installed not in offered
    from diffariff.data.pieces.build import resolve_fonts

    with pytest.raises(InputError, match="reserved"):
        resolve_fonts([str(fake)])


def test_available_soundfonts_are_full_gm_banks_first_fluid_last_small():
    fonts = available_soundfonts()
    assert fonts and all(p.is_file() for p in fonts)
    assert not any("Pearl" in p.name or "Zeppelin" in p.name or p.name == "FluidR3_GS.sf2" for p in fonts)
    assert fonts[-1].name == "TimGM6mb.sf2"  # the procedural tests take the last one as "the small bank"
    # the out-of-domain evaluation bank is never drawn for training, by any kind list
    offered = available_soundfonts("all") + [s.path for s in training_soundfonts()]
    assert not any(p.name == "sf_GMbank.sf2" for p in offered)


def test_pitch_bend_moves_the_pitch():
    """+4096 is half the default +-2-semitone bend range: A4 (440 Hz) sounds as B-flat 4 (466 Hz)."""
    evs = [Event(0.0, "program", 0, 73), Event(0.0, "bend", 0, 4096), Event(0.05, "note_on", 0, 69, 100),
           Event(0.6, "note_off", 0, 69)]
    hz = _peak_hz(get_engine(SR).render(evs, SMALL, seconds=0.7), 0.15, 0.55)
    assert abs(12 * np.log2(hz / _midi_hz(70))) < 0.3
