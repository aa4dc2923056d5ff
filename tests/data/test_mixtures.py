"""Plain recorded mixtures (diffariff.data.mixtures) on tiny real audio files written in tmp_path."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from diffariff.audio import resample
from diffariff.data.mixtures import (
    OOD_SPLIT,
    load_mixtures,
    random_spans,
    split_of_recording,
)
from diffariff.errors import DatasetError

MIN = 1.0  # min_seconds used throughout: the test files are seconds long


def _music(seconds: float, sr: int, channels: int, seed: int) -> np.ndarray:
    """``float32 [N, C]``: two notes and a little noise, different in every channel and position."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    cols = []
    for c in range(channels):
        f0 = 220.0 * (1 + c) + 37.0 * seed
        tone = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f0 * t + c)
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t + seed)
        cols.append(tone * envelope + 0.02 * rng.standard_normal(t.size))
    return np.stack(cols, axis=1).astype(np.float32)


def _write(path: Path, audio: np.ndarray, sr: int) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".ogg":
        sf.write(str(path), audio, sr, format="OGG", subtype="VORBIS")
    else:
        sf.write(str(path), audio, sr, subtype="PCM_16")
    return audio


@pytest.fixture
def library(tmp_path):
    """A folder of mixtures: 4 good files in 3 sources, 4 bad ones, a text file, a hidden folder.

    Returns ``(root, originals)`` with the written float32 ``[N, C]`` arrays of the flac files.
    """
    root = tmp_path / "real"
    originals = {}
    _write(root / "alpha" / "song_a.ogg", _music(3.0, 44_100, 2, 1), 44_100)
    originals["alpha/sub/song_b.flac"] = _write(root / "alpha" / "sub" / "song_b.flac", _music(2.5, 48_000, 1, 2),
                                                48_000)
    originals["beta/song_c.flac"] = _write(root / "beta" / "song_c.flac", _music(3.0, 32_000, 2, 3), 32_000)
    _write(root / "planet" / "song_d.ogg", _music(2.0, 48_000, 2, 4), 48_000)
    # Bad files: random bytes, an empty file, a flac cut after its header, one too short.
    (root / "alpha" / "broken.ogg").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "beta" / "empty.wav").write_bytes(b"")
    whole = root / "beta" / "cut.flac"
    _write(whole, _music(2.0, 48_000, 1, 5), 48_000)
    whole.write_bytes(whole.read_bytes()[:200])
    _write(root / "beta" / "short.wav", _music(0.5, 48_000, 2, 6), 48_000)
    # Ignored: not audio, hidden.
    (root / "beta" / "notes.txt").write_text("not audio")
    _write(root / ".hidden" / "secret.flac", _music(2.0, 48_000, 1, 7), 48_000)
    return root, originals


def _load(root, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = load_mixtures(root, min_seconds=MIN, holdout=("planet",), **kwargs)
    return recs, [str(w.message) for w in caught]


def test_finds_sources_durations_and_skips_bad_files_with_one_warning_each(library):
    root, _ = library
    recs, messages = _load(root)
    found = {(r.source, r.relpath): r for r in recs}
    assert set(found) == {("alpha", "song_a.ogg"), ("alpha", "sub/song_b.flac"), ("beta", "song_c.flac"),
                          ("planet", "song_d.ogg")}
    expected = {"song_a.ogg": (3.0, 44_100, 2), "sub/song_b.flac": (2.5, 48_000, 1),
                "song_c.flac": (3.0, 32_000, 2), "song_d.ogg": (2.0, 48_000, 2)}
    for (_, relpath), rec in found.items():
        seconds, sr, channels = expected[relpath]
        assert rec.duration == pytest.approx(seconds, abs=1e-4)
        assert (rec.sample_rate, rec.channels) == (sr, channels)
        assert rec.path == root / rec.source / relpath
    # One warning per bad file, each naming it; nothing about the text file or the hidden folder.
    for bad in ("broken.ogg", "empty.wav", "cut.flac", "short.wav"):
        assert sum(bad in m for m in messages) == 1, (bad, messages)
    assert len(messages) == 4
    assert all("\n" not in m for m in messages)
    # With the default minimum length (10 s) every one of these seconds-long files is too short.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError):
            load_mixtures(root)


def test_spans_read_exactly_the_samples_of_a_full_read(library):
    root, originals = library
    recs, _ = _load(root)
    for rec in recs:
        sr, c = rec.sample_rate, rec.channels
        full = rec.load(sample_rate=sr, channels=c)
        assert full.dtype == np.float32 and full.shape == (c, rec.frames)
        start, n = int(round(1.2345 * sr)), int(round(0.5 * sr))
        span = rec.load(sample_rate=sr, channels=c, offset_seconds=1.2345, seconds=0.5)
        np.testing.assert_array_equal(span, full[:, start:start + n])
        # Past the end: the tail, then zeros; the length is always round(seconds * rate).
        tail = rec.load(sample_rate=sr, channels=c, offset_seconds=rec.duration - 0.1, seconds=0.5)
        k = rec.frames - int(round((rec.duration - 0.1) * sr))
        assert tail.shape == (c, n)
        np.testing.assert_array_equal(tail[:, :k], full[:, -k:])
        assert not np.any(tail[:, k:])
    # Lossless files: the span is the written signal itself (16-bit quantisation apart).
    by_key = {r.key: r for r in recs}
    for key, written in originals.items():
        rec = by_key[key]
        span = rec.load(sample_rate=rec.sample_rate, channels=rec.channels, offset_seconds=0.75, seconds=1.0)
        start = int(round(0.75 * rec.sample_rate))
        np.testing.assert_allclose(span, written[start:start + rec.sample_rate].T, atol=1.0 / 32768)


def test_spans_resample_and_convert_channels(library):
    root, originals = library
    by_key = {r.key: r for r in _load(root)[0]}
    # 32 kHz stereo -> 48 kHz: matches resampling the whole file, away from the span's edges.
    rec = by_key["beta/song_c.flac"]
    whole = resample(originals["beta/song_c.flac"].T, 32_000, 48_000)
    span = rec.load(offset_seconds=1.0, seconds=1.0)
    assert span.shape == (2, 48_000) and span.dtype == np.float32
    inner = slice(480, 48_000 - 480)
    np.testing.assert_allclose(span[:, inner], whole[:, 48_000:96_000][:, inner], atol=2e-3)
    # Mono -> stereo duplicates; stereo -> mono averages.
    mono = by_key["alpha/sub/song_b.flac"]
    dup = mono.load(48_000, 2, 0.5, 1.0)
    np.testing.assert_array_equal(dup[0], dup[1])
    np.testing.assert_array_equal(dup[:1], mono.load(48_000, 1, 0.5, 1.0))
    stereo = by_key["planet/song_d.ogg"]
    two = stereo.load(48_000, 2, 0.5, 1.0)
    np.testing.assert_allclose(stereo.load(48_000, 1, 0.5, 1.0)[0], two.mean(axis=0), atol=1e-6)
    with pytest.raises(DatasetError):
        rec.load(offset_seconds=-1.0, seconds=1.0)


def test_empty_or_unusable_folders_raise_dataset_error(tmp_path, library):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no usable audio files"):
        load_mixtures(empty)
    junk = tmp_path / "junk"
    (junk / "pkg").mkdir(parents=True)
    (junk / "pkg" / "a.ogg").write_bytes(b"OggS but not really")
    with pytest.warns(UserWarning, match="a.ogg"), pytest.raises(DatasetError):
        load_mixtures(junk)
    with pytest.raises(DatasetError, match="does not exist"):
        load_mixtures(tmp_path / "missing")
    root, _ = library
    with pytest.raises(DatasetError, match="splits present"):
        _load(root, split="nonexistent")


def test_split_assignment_is_deterministic_by_hash_with_whole_sources_held_out():
    # Pinned values: the hash must never change, or train and test files would swap between versions.
    # (Computed apart with hashlib: SHA-1 of "source/relpath", first 8 bytes big-endian / 2**64.)
    assert split_of_recording("warzone2100-music", "menu.opus") == "test"
    firsts = [split_of_recording("src", f"f{i}.ogg") for i in range(40)]
    assert {i: s for i, s in enumerate(firsts) if s != "train"} == {
        7: "test", 11: "valid", 22: "test", 23: "valid", 24: "valid", 25: "valid"}
    assert split_of_recording("planetblupi-music-ogg", "music000.ogg") == OOD_SPLIT
    # Held-out sources go wholly to test_ood; the others never do.
    names = [f"album{i % 7}/track{i}.ogg" for i in range(4000)]
    assert {split_of_recording("planet", n, holdout=("planet",)) for n in names} == {OOD_SPLIT}
    splits = [split_of_recording("pkg", n, holdout=("planet",)) for n in names]
    assert splits == [split_of_recording("pkg", n, holdout=("planet",)) for n in names]
    counts = {s: splits.count(s) / len(splits) for s in set(splits)}
    assert set(counts) == {"train", "valid", "test"}
    assert counts["train"] == pytest.approx(0.90, abs=0.02)
    assert counts["valid"] == pytest.approx(0.05, abs=0.015)
    assert counts["test"] == pytest.approx(0.05, abs=0.015)
    # The source is part of the key: the same file names in another source split differently.
    other = [split_of_recording("pkg2", n, holdout=()) for n in names]
    assert other != splits


def test_folder_splits_holdout_filter_and_overrides(library):
    root, _ = library
    recs, _ = _load(root)
    by_key = {r.key: r for r in recs}
    assert by_key["planet/song_d.ogg"].split == OOD_SPLIT
    for rec in by_key.values():
        if rec.source != "planet":
            assert rec.split == split_of_recording(rec.source, rec.relpath, holdout=())
    ood, _ = _load(root, split=OOD_SPLIT)
    assert [r.key for r in ood] == ["planet/song_d.ogg"]
    # A flat source folder loaded on its own keeps its source name, so its splits.
    alone, _ = _load(root / "beta")
    assert [(r.key, r.split) for r in alone] == [(r.key, r.split) for r in recs if r.source == "beta"]
    # splits.json: a source entry, and a file entry that wins over it.
    (root / "splits.json").write_text(json.dumps({"valid": ["alpha"], "test": ["alpha/sub/song_b.flac"],
                                                  "train": ["planet"]}))
    recs, _ = _load(root)
    got = {r.key: r.split for r in recs}
    assert got["alpha/song_a.ogg"] == "valid"
    assert got["alpha/sub/song_b.flac"] == "test"
    assert got["planet/song_d.ogg"] == "train"
    assert got["beta/song_c.flac"] == by_key["beta/song_c.flac"].split
    (root / "splits.json").write_text(json.dumps({"train": "alpha"}))
    with pytest.raises(DatasetError, match="splits.json"):
        _load(root)


def test_duplicate_links_count_once(library):
    root, _ = library
    (root / "gamma").mkdir()
    (root / "gamma" / "again.ogg").symlink_to(root / "alpha" / "song_a.ogg")
    recs, _ = _load(root)
    assert sum(r.path.resolve() == (root / "alpha" / "song_a.ogg").resolve() for r in recs) == 1


def test_random_spans_shapes_non_silence_and_retries(tmp_path):
    root = tmp_path / "mix"
    sr = 48_000
    # Half silence, then music: a 0.5 s span drawn at random is silent 40 % of the time.
    half = np.zeros((3 * sr, 2), dtype=np.float32)
    half[int(1.5 * sr):] = _music(1.5, sr, 2, 8)
    _write(root / "quiet" / "half.flac", half, sr)
    recs, _ = _load(root)

    def rms_db(a):
        return 20 * np.log10(np.sqrt(np.mean(a.astype(np.float64) ** 2)) + 1e-12)

    spans = random_spans(recs, 12, 0.5, np.random.default_rng(3), sample_rate=sr, channels=2)
    assert len(spans) == 12
    assert all(s.shape == (2, sr // 2) and s.dtype == np.float32 for s in spans)
    assert all(rms_db(s) > -50 for s in spans)
    # Without retries, silent spans come through: the retries are what removed them.
    with pytest.warns(UserWarning, match="dBFS"):
        once = random_spans(recs, 12, 0.5, np.random.default_rng(3), sample_rate=sr, channels=2, attempts=1)
    assert any(rms_db(s) < -50 for s in once)
    # Same generator seed, same spans; other rates and channel counts have the asked shape.
    again = random_spans(recs, 12, 0.5, np.random.default_rng(3), sample_rate=sr, channels=2)
    assert all(np.array_equal(a, b) for a, b in zip(spans, again))
    mono = random_spans(recs, 2, 0.25, 0, sample_rate=16_000, channels=1)
    assert [s.shape for s in mono] == [(1, 4000), (1, 4000)]
    # Too long for every recording -> DatasetError.
    with pytest.raises(DatasetError):
        random_spans(recs, 1, 5.0, 0)


def test_random_spans_leave_out_a_file_that_became_unreadable(library):
    root, _ = library
    recs, _ = _load(root)
    gone = next(r for r in recs if r.source == "beta")
    shutil.rmtree(root / "beta")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spans = random_spans(recs, 30, 0.5, np.random.default_rng(0))
    assert len(spans) == 30 and all(s.shape == (2, 24_000) for s in spans)
    leaving = [str(w.message) for w in caught if "leaving out" in str(w.message)]
    assert len(leaving) == 1 and gone.path.name in leaving[0]
