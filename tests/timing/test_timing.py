"""Tempo, meter and downbeats (:mod:`diffariff.timing`) on rendered corpus songs whose metadata gives the
true grid (bar 1 at t = 0), the bar grid's arithmetic and validation, and the loop / output helpers.

The detection is not right on every song (measured accuracy: ``python -m diffariff.timing.evaluate``,
README "Bars and tempo"); the song tests assert it on most songs, and exactly once the tempo and meter
are given (then only the downbeat phase is detected)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffariff.audio import load_audio
from diffariff.errors import InputError
from diffariff.timing import BarGrid, parse_bars, parse_meter
from diffariff.timing.bars import check_bpm
from diffariff.timing.daw import OutputFormat, sidecar, sidecar_path, to_output_rate
from diffariff.timing.evaluate import downbeat_f_measure, score, true_grid
from diffariff.timing.loops import make_loop, place_region, tile
from diffariff.timing.tempo import analyze_audio

#: Corpus seed 5, 12-s songs: (index, meter, tempo) covering 3/4, 4/4 and 6/8 at 67-163 bpm.
SONGS = [(1, "4/4", 76), (4, "4/4", 111), (9, "4/4", 134), (0, "3/4", 141), (39, "3/4", 102), (78, "3/4", 163),
         (91, "3/4", 68), (38, "6/8", 67), (34, "6/8", 115), (19, "6/8", 97)]


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    from diffariff.data.synth.corpus import render_song

    root = tmp_path_factory.mktemp("timing_songs")
    out = []
    for index, meter, tempo in SONGS:
        folder = render_song(index, 5, 12.0, root)
        meta = json.loads((folder / "metadata.json").read_text())
        assert "/".join(map(str, meta["meter"])) == meter and meta["tempo"] == tempo
        audio, sr = load_audio(folder / "mixture.flac")
        out.append((meta, audio, sr))
    return out


def test_detection_on_most_rendered_songs(songs):
    rows = [score(analyze_audio(audio, sr), true_grid(meta), meta["seconds"]) for meta, audio, sr in songs]
    tempo_ok = [r["tempo_err"] <= 0.04 for r in rows]
    downbeats_ok = [r["downbeat_f"] >= 0.8 for r in rows]
    assert sum(tempo_ok) >= 7, rows
    assert sum(downbeats_ok) >= 6, rows
    assert sum(r["meter_ok"] for r in rows) >= 6, rows
    assert np.mean([r["beat_f"] for r in rows]) >= 0.8


def test_the_fitted_scorer_is_loaded_and_matches_the_features():
    from diffariff.timing import meter

    assert meter.SCORER.names == meter.FEATURES  # a stale meter_weights.json would fall back to WEIGHTS
    assert meter.SCORER.hidden.shape == (len(meter.FEATURES), meter.SCORER.out.shape[0])
    assert meter.SCORER.out.shape[0] > 0 and np.all(meter.SCORER.scale > 0)


def test_refine_grid_keeps_a_click_track_grid_on_its_clicks():
    from diffariff.timing.beats import ANALYSIS_SR, onset_features, refine_grid

    rng = np.random.default_rng(0)
    period, first = 60.0 / 97.0, 0.25  # 97 bpm broadband clicks (noise bursts) from 0.25 s
    y = np.zeros(int(ANALYSIS_SR * 12.0), np.float32)
    for t in first + period * np.arange(19):
        i = int(round(t * ANALYSIS_SR))
        y[i:i + 2000] += (rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300.0)).astype(np.float32)
    feats = onset_features(y)
    p, anchor = refine_grid(feats, period, first + 0.02)  # start 20 ms late
    assert abs(p / period - 1) < 0.006
    assert abs((anchor - first + period / 2) % period - period / 2) < 0.035  # onset frames lag ~25 ms


def test_given_tempo_and_meter_leave_only_the_downbeat_to_find(songs):
    for meta, audio, sr in songs:
        meter = tuple(meta["meter"])
        grid = analyze_audio(audio, sr, bpm=meta["tempo"], meter=meter)
        assert grid.bpm == meta["tempo"] and grid.meter == meter
        r = score(grid, true_grid(meta), meta["seconds"])
        assert abs(r["first_downbeat_err_s"]) <= 0.07 or r["downbeat_f"] >= 0.8, (meta["name"], r)


def test_every_override_given_skips_the_analysis_and_is_checked():
    silence = np.zeros((2, 48_000 * 3), np.float32)
    g = analyze_audio(silence, 48_000, bpm=90, meter="6/8", downbeat_s=0.25)
    assert (g.bpm, g.meter, g.first_downbeat_s, g.duration_s) == (90, (6, 8), 0.25, 3.0)
    with pytest.raises(InputError, match="no onsets"):
        analyze_audio(silence, 48_000)
    with pytest.raises(InputError, match="not inside"):
        analyze_audio(silence, 48_000, bpm=90, meter="4/4", downbeat_s=5.0)
    with pytest.raises(InputError, match="at least"):
        analyze_audio(silence[:, :48_000], 48_000)


def test_bar_grid_arithmetic():
    g = BarGrid.regular(120, "4/4", 0.5, 10.0)
    assert g.bar_seconds == 2.0 and g.beat_seconds == 0.5 and g.bar_count() == 4
    assert g.bars_to_seconds(2, 3) == (2.5, 6.5)
    assert g.bars_to_samples(2, 3, 44_100) == (110_250, 286_650)
    assert g.bars_to_samples(4, 5, 48_000) == (6.5 * 48_000, 480_000)  # clipped to the audio
    assert g.downbeat_times(10.0) == [0.5, 2.5, 4.5, 6.5, 8.5]
    assert g.beat_times[0] == 0.0 and len(g.beat_times) == 20
    six = BarGrid.regular(90, (6, 8), 0.0, 12.0)
    assert six.quarters_per_bar == 3 and six.bar_seconds == 2.0 and six.beat_seconds == pytest.approx(1 / 3)
    d = g.to_dict(sample_rate=44_100)
    assert d["first_downbeat_samples"] == 22_050 and d["bars"] == 4 and d["meter"] == "4/4"
    assert g.with_overrides(bpm=60).bar_seconds == 4.0 and g.with_overrides(meter="3/4").bar_seconds == 1.5


@pytest.mark.parametrize("bars, message", [((0, 2), "numbered from 1"), ((3, 2), "after the last"),
                                           ((5, 6), "past the end"), ((9, 12), "past the end")])
def test_bad_bars_are_one_line_errors(bars, message):
    g = BarGrid.regular(120, "4/4", 0.5, 10.0)
    with pytest.raises(InputError, match=message) as err:
        g.check_bars(*bars)
    assert "\n" not in str(err.value)
    assert g.check_bars(4, 5) == (4, 5)  # the last bar may run past the end (clipped) ...
    with pytest.raises(InputError, match="past the end"):
        g.check_bars(4, 5, whole=True)  # ... unless whole bars are needed


def test_parsers_refuse_bad_values():
    assert parse_bars("9:12") == (9, 12) and parse_bars("3") == (3, 3) and parse_meter(" 6/8 ") == (6, 8)
    for bad in ("a:b", "1-4", "", "1:2:3"):
        with pytest.raises(InputError, match="A:B"):
            parse_bars(bad)
    for bad in ("4/5", "0/4", "four", "4/4/4", "33/4"):
        with pytest.raises(InputError):
            parse_meter(bad)
    for bad in (20, 400, 0, -5, float("nan"), "x"):
        with pytest.raises(InputError):
            check_bpm(bad)
    assert check_bpm(20.5) == 20.5


def test_f_measure():
    ref = np.arange(0, 10, 2.0)
    assert downbeat_f_measure(ref + 0.05, ref) == 1.0
    assert downbeat_f_measure(ref + 0.1, ref) == 0.0
    assert downbeat_f_measure(ref[::2], ref) == pytest.approx(2 * 0.6 / 1.6)


def test_loop_flows_from_its_end_into_its_start():
    rng = np.random.default_rng(0)
    seg = rng.standard_normal((2, 1300)).astype(np.float32)
    loop = make_loop(seg, 1000, 100)
    assert loop.shape == (2, 1000)
    np.testing.assert_allclose(loop[:, 100:], seg[:, 100:1000])
    assert np.abs(loop[:, 0] - seg[:, 1000]).max() < 0.05  # the loop starts where the segment went on
    out = tile(loop, 5000, 500, 4500, 1000.4)
    assert not out[:, :500].any() and not out[:, 4500:].any()
    np.testing.assert_array_equal(out[:, 500:1500], loop)
    np.testing.assert_array_equal(out[:, 2501:3501], loop)  # round(500 + 2 x 1000.4)
    region = place_region(np.ones((2, 400), np.float32), 1000, 300, 40)
    assert not region[:, :300].any() and not region[:, 700:].any() and region[0, 500] == 1.0
    assert region[0, 300] < 0.01 and region[0, 699] < 0.01


def test_output_rate_and_sidecar(tmp_path):
    audio = np.random.default_rng(1).standard_normal((2, 48_000)).astype(np.float32) * 0.1
    for sr, n in ((44_100, 44_100), (44_100, 44_099), (48_000, 48_000), (22_050, 22_051)):
        assert to_output_rate(audio, OutputFormat(sr, n)).shape == (2, n)
    grid = BarGrid.regular(92, "4/4", 0.1, 1.0)
    meta = sidecar(tmp_path / "bass.wav", OutputFormat(44_100, 44_100), grid, bars=(1, 1), context="ctx.wav")
    assert meta["first_downbeat_samples"] == 4410 and meta["sample_rate"] == 44_100 and meta["bpm"] == 92
    assert meta["bars_generated"] == [1, 1] and meta["diffariff_version"]
    assert sidecar_path(tmp_path / "bass.wav").name == "bass.wav.json"


@pytest.fixture(scope="module")
def slow_groove(render_notes):
    """A 60-bpm 4/4 groove, 16 s at 48 kHz [2, N]: kick on beats 1 and 3, side stick on 2 and 4, soft
    closed hi-hat eighths, one piano bass note per bar; and the piano alone."""
    n = 16 * 48_000
    kick = render_notes(0, [36] * 8, drum=True, beat_seconds=2.0, seconds=16.0)
    stick = np.pad(render_notes(0, [37] * 8, drum=True, beat_seconds=2.0, seconds=15.0), ((0, 0), (48_000, 0)))
    hats = 0.4 * render_notes(0, [42] * 32, drum=True, beat_seconds=0.5, seconds=16.0)
    piano = render_notes(0, [48, 53, 55, 48], beat_seconds=4.0, seconds=16.0)
    return (kick + stick + hats + piano)[:, :n], piano[:, :n]


def test_octave_evidence_prefers_the_real_beat_of_a_slow_groove(slow_groove):
    from diffariff.timing.beats import onset_features, to_mono_analysis
    from diffariff.timing.octave import backbeat, octave_features, song_rhythm

    mix, piano = slow_groove
    feats = onset_features(to_mono_analysis(mix, 48_000))
    assert backbeat(feats, 0.0, (4, 4), 60.0) > 0.5  # the side stick on 2 and 4 ...
    assert backbeat(feats, 0.0, (4, 4), 120.0) < 0.0  # ... lands on the strong beats at double tempo
    rh = song_rhythm(feats)
    slow, fast = octave_features(rh, 1.0), octave_features(rh, 0.5)
    assert slow["ac_beat"] > 0.3 and slow["density"] > fast["density"]
    assert rh.peaky > song_rhythm(onset_features(to_mono_analysis(piano, 48_000))).peaky + 1.0  # drums vs piano
    grid = analyze_audio(mix, 48_000)
    assert abs(grid.bpm / 60.0 - 1) <= 0.02 and grid.meter == (4, 4), (grid.bpm, grid.meter)


def test_fit_scorer_tempo_term_ranks_the_right_tempo_first():
    from diffariff.timing.scorer import fit_scorer

    rng = np.random.default_rng(0)
    songs = []
    for _ in range(30):  # feature 0 marks the right tempo, feature 1 the right hypothesis among those
        x = 0.3 * rng.standard_normal((6, 2))
        tempo = np.array([True, True, True, False, False, False])
        x[:3, 0] += 2.0
        right = np.zeros(6, bool)
        right[0] = True
        x[0, 1] += 1.0
        songs.append((x, right, tempo))
    sc = fit_scorer(songs, ("a", "b"), hidden=0, tempo_weight=1.0)
    assert all(int(np.argmax(sc(x))) < 3 for x, _, _ in songs)
    assert sc.linear[0] > 0 and sc.linear[1] > 0
