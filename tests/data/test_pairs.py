"""The (context, target, reference) recipe on a small rendered multitrack set."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from diffariff.audio import save_audio
from diffariff.data.pairs import (
    PairConfig,
    PairDataset,
    PairSampler,
    collate_pairs,
    evaluation_pairs,
    rms_db,
)
from diffariff.data.sources import load_folder
from diffariff.errors import ConfigError, DatasetError

SR = 48_000
GAP = (6.0, 20.0)  # the "lead" stems are silent between these seconds


def _line(root: int, n: int, step: int) -> list[int]:
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    return [root + scale[(i * step) % len(scale)] for i in range(n)]


@pytest.fixture(scope="module")
def songs(tmp_path_factory, render_notes):
    """Four 25-28 s songs with 3-4 stems, one stem with a silent gap, one silent stem, one short song."""
    secs = 28.0
    n = int(secs / 0.25)
    bass = render_notes(33, _line(36, n, 3), seconds=secs)
    bass2 = render_notes(34, _line(41, n, 5), seconds=secs)
    piano = render_notes(0, _line(60, n, 2), seconds=secs)
    drums = render_notes(0, [36, 42, 38, 42] * (n // 4), drum=True, seconds=secs)
    strings = render_notes(48, _line(55, n // 2, 1), beat_seconds=0.5, seconds=secs)
    choir = render_notes(52, _line(67, n // 2, 3), beat_seconds=0.5, seconds=secs)
    lead = render_notes(73, _line(72, n, 5), seconds=secs)
    lead[:, int(GAP[0] * SR): int(GAP[1] * SR)] = 0.0
    silent = np.zeros_like(bass)
    layout = {
        "song_0": {"bass": bass, "piano": piano, "drums": drums, "vocals": choir},
        "song_1": {"bass": bass2, "strings": strings, "lead": lead},
        "song_2": {"piano": piano[:, : 26 * SR], "drums": drums[:, : 26 * SR], "strings": strings[:, : 26 * SR],
                   "fx": silent[:, : 26 * SR]},
        "song_3": {"bass": bass[:, : 25 * SR], "drums": drums[:, : 25 * SR], "lead": lead[:, : 25 * SR]},
        "song_short": {"bass": bass[:, : 12 * SR], "piano": piano[:, : 12 * SR]},
    }
    root = tmp_path_factory.mktemp("pairs_songs")
    for song, stems in layout.items():
        for name, audio in stems.items():
            save_audio(root / song / f"{name}.wav", audio, SR, subtype="float")
    return load_folder(root)


def _by_name(songs):
    return {s.name: s for s in songs}


def _only_target(song, name):
    """A copy of ``song`` where every stem but ``name`` is marked vocal (context only)."""
    song = copy.deepcopy(song)
    for stem in song.stems.values():
        stem.is_vocal = stem.name != name
    return song


def _window(song, stem, start, n, channels=2):
    return song.load_stem(stem, SR, channels, start / SR, n / SR)


def test_items_follow_the_recipe(songs):
    cfg = PairConfig()
    sampler = PairSampler(songs, cfg, seed=3)
    assert sampler.skipped_songs == ["song_short"]
    named = _by_name(songs)
    n, nref = cfg.window_samples, cfg.reference_samples
    assert n == 480_000
    seen_targets = set()
    for i in range(30):
        item = sampler.pair(i)
        song = named[item["song"]]
        stem, start, ref = item["target_stem"], item["start"], item["reference_start"]
        seen_targets.add((song.name, stem))
        for key, length in (("context", n), ("target", n), ("reference", nref)):
            assert item[key].dtype == torch.float32 and tuple(item[key].shape) == (2, length)
        assert not song.stems[stem].is_vocal and stem != "fx"
        assert stem not in item["context_stems"]
        assert set(item["context_stems"]) <= set(song.stems)
        want_ctx = sum((_window(song, s, start, n) for s in item["context_stems"]), np.zeros((2, n), np.float32))
        np.testing.assert_allclose(item["context"].numpy(), want_ctx, atol=1e-5)
        np.testing.assert_array_equal(item["target"].numpy(), _window(song, stem, start, n))
        np.testing.assert_array_equal(item["reference"].numpy(), _window(song, stem, ref, nref))
        assert ref + nref <= start or ref >= start + n  # no overlap with the target window
        assert 0 <= min(start, ref) and max(start + n, ref + nref) <= song.duration_seconds() * SR
        assert rms_db(item["target"].numpy()) > cfg.silence_threshold_db
        assert rms_db(item["reference"].numpy()) > cfg.silence_threshold_db
        if stem == "lead":  # a window inside the silent gap is never a target
            assert not (GAP[0] * SR <= start and start + n <= GAP[1] * SR)
        assert item["target_role"] == song.stems[stem].role and item["target_tags"] == list(song.stems[stem].tags)
        assert item["index"] == i
    assert len(seen_targets) >= 5


def test_silent_windows_are_skipped(songs):
    """Only the gappy "lead" stems of song_1/3 are sampled: the gap's windows must never come out."""
    named = _by_name(songs)
    lead_songs = [_only_target(named["song_1"], "lead"), _only_target(named["song_3"], "lead")]
    cfg = PairConfig(window_seconds=4.0, reference_seconds=2.0)
    sampler = PairSampler(lead_songs, cfg, seed=0)
    starts = [sampler.pair(i)["start"] / SR for i in range(60)]
    # Windows [s, s+4) fully inside the 6..20 s gap would be silent; uniform sampling would put
    # about half of them there.
    assert not any(GAP[0] <= s and s + 4.0 <= GAP[1] for s in starts)
    assert any(s < GAP[0] for s in starts) and any(s + 4.0 > GAP[1] for s in starts)


def test_same_seed_same_pairs_and_seeds_differ(songs):
    cfg = PairConfig(window_seconds=3.0, reference_seconds=2.0)
    a = [PairSampler(songs, cfg, seed=11).pair(i) for i in range(6)]
    b = [PairSampler(songs, cfg, seed=11).pair(i) for i in reversed(range(6))][::-1]
    c = [PairSampler(songs, cfg, seed=12).pair(i) for i in range(6)]
    for x, y in zip(a, b):
        assert _meta(x) == _meta(y)
        for key in ("context", "target", "reference"):
            assert torch.equal(x[key], y[key])
    assert [_meta(x) for x in a] != [_meta(x) for x in c]


def _meta(item):
    return {k: v for k, v in item.items() if not isinstance(v, torch.Tensor)}


def test_dataloader_workers_give_identical_items(songs):
    cfg = PairConfig(window_seconds=3.0, reference_seconds=2.0, channels=1)
    ds = PairDataset(songs, cfg, length=8, seed=5)

    def run(workers):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=collate_pairs)
        return list(loader)

    serial, parallel = run(0), run(2)
    assert len(serial) == len(parallel) == 4
    for x, y in zip(serial, parallel):
        assert x["context"].shape == (2, 1, 3 * SR) and x["reference"].shape == (2, 1, 2 * SR)
        assert _meta(x) == _meta(y)
        for key in ("context", "target", "reference"):
            assert torch.equal(x[key], y[key])
    assert [i for batch in serial for i in batch["index"]] == list(range(8))
    with pytest.raises(IndexError):
        ds[8]


def test_context_subset_policy(songs):
    """Each other stem joins with p=0.5, so P(empty context) = 0.5**k for k other stems."""
    cfg = PairConfig(window_seconds=2.0, reference_seconds=1.0)
    sampler = PairSampler(songs, cfg, seed=7)
    named = _by_name(songs)
    items = [sampler.pair(i) for i in range(240)]
    others = [len(named[it["song"]].stems) - 1 for it in items]
    expected_empty = float(np.mean([0.5**k for k in others]))
    empty = float(np.mean([len(it["context_stems"]) == 0 for it in items]))
    assert abs(empty - expected_empty) < 0.08
    assert any(len(it["context_stems"]) == k for it, k in zip(items, others))  # full context occurs too
    inclusion = sum(len(it["context_stems"]) for it in items) / sum(others)
    assert abs(inclusion - 0.5) < 0.06
    vocal_context = [it for it in items if "vocals" in it["context_stems"]]
    assert vocal_context and all(it["target_stem"] != "vocals" for it in items)
    for it in items:
        if not it["context_stems"]:
            assert not torch.any(it["context"])


def test_reference_gap(songs):
    cfg = PairConfig(window_seconds=5.0, reference_seconds=3.0, min_reference_gap_seconds=4.0)
    sampler = PairSampler(songs, cfg, seed=1)
    n, nref, gap = cfg.window_samples, cfg.reference_samples, cfg.gap_samples
    for i in range(15):
        it = sampler.pair(i)
        s, r = it["start"], it["reference_start"]
        assert r + nref + gap <= s or r >= s + n + gap


def test_evaluation_pairs_are_fixed_and_spread(songs):
    cfg = PairConfig()
    a = evaluation_pairs(songs, cfg, n=8, seed=0)
    b = evaluation_pairs(songs, cfg, n=8, seed=0)
    assert [_meta(x) for x in a] == [_meta(x) for x in b]
    assert all(torch.equal(x["target"], y["target"]) for x, y in zip(a, b))
    assert {x["song"] for x in a} == {"song_0", "song_1", "song_2", "song_3"}
    named = _by_name(songs)
    for x in a:
        song = named[x["song"]]
        assert sorted(x["context_stems"]) == sorted(set(song.stems) - {x["target_stem"]})
        assert x["target_stem"] != "fx" and not song.stems[x["target_stem"]].is_vocal
    song_0_targets = {x["target_stem"] for x in a if x["song"] == "song_0"}
    assert len(song_0_targets) == 2  # round-robin over the song's targets


def test_unusable_song_sets_raise(songs):
    named = _by_name(songs)
    with pytest.raises(DatasetError, match="none of 1 songs can give a pair"):
        PairSampler([named["song_short"]], PairConfig())
    silent_only = _only_target(named["song_2"], "fx")
    sampler = PairSampler([silent_only], PairConfig(window_seconds=2.0, max_tries=5), seed=0)
    with pytest.raises(DatasetError, match="no non-silent target window found for item 0 after 5 tries"):
        sampler.pair(0)
    with pytest.raises(DatasetError, match="no non-silent target window found"):
        evaluation_pairs([silent_only], PairConfig(window_seconds=2.0, max_tries=3), n=1)


@pytest.mark.parametrize("kwargs", [{"window_seconds": 0}, {"channels": 3}, {"context_probability": 1.5},
                                    {"reference_seconds": -1.0}, {"max_tries": 0},
                                    {"min_reference_gap_seconds": -2}])
def test_config_validation(kwargs):
    with pytest.raises(ConfigError):
        PairConfig(**kwargs)
