"""The synthetic corpus end to end: real FluidSynth stems, files read back, CLI, resumption."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from diffariff.cli import main
from diffariff.data.synth import gm
from diffariff.data.synth.corpus import SAMPLE_RATE, build_corpus, render_example, render_song, rms_db
from diffariff.data.synth.metadata import validate_metadata
from diffariff.data.synth.render import available_soundfonts
from diffariff.data.synth.stats import corpus_stats, format_stats
from diffariff.data.synth.styles import STYLES
from diffariff.errors import DatasetError, DiffariffError

SECONDS = 6.0
#: The small GM soundfont loads in half the time of FluidR3 (the default alternation is tested by
#: test_render_example, whose song 0 uses the first installed soundfont).
SOUNDFONT = str(available_soundfonts()[-1])
#: A stem is "audible" when its RMS over the whole song is above this (dBFS).
AUDIBLE_DB = -50.0


def _read(folder):
    meta = json.loads((folder / "metadata.json").read_text())
    stems = {k: sf.read(folder / s["file"], dtype="float64", always_2d=True)[0].T for k, s in meta["stems"].items()}
    mix = sf.read(folder / meta["mixture"], dtype="float64", always_2d=True)[0].T
    return meta, stems, mix


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    assert main(["corpus", "--songs", "2", "--seconds", str(SECONDS), "--out", str(out), "--seed", "3",
                 "--soundfont", SOUNDFONT, "--quiet"]) == 0
    return out


def test_layout_and_metadata(corpus):
    songs = sorted(p.name for p in corpus.iterdir())
    assert songs == ["song_00000", "song_00001"]  # no temporary folder left behind
    for name in songs:
        folder = corpus / name
        meta = json.loads((folder / "metadata.json").read_text())
        validate_metadata(meta, folder)
        assert meta["name"] == name and meta["seed"] == 3 and meta["seconds"] == SECONDS
        assert meta["soundfont"] == os.path.basename(SOUNDFONT)
        assert 2 <= len(meta["stems"]) <= 7
        files = {p.name for p in folder.iterdir()}
        assert files == {"metadata.json", "mixture.flac"} | {s["file"] for s in meta["stems"].values()}
        for stem in meta["stems"].values():
            assert sf.info(str(folder / stem["file"])).subtype == "PCM_24"
            assert len(stem["tags"]) >= 6
            if not stem["is_drum"]:  # tags are derived from what was written, so check a few truths
                assert set(gm.program(stem["program"]).tags) <= set(stem["tags"])
                assert f"{stem['register']} register" in stem["tags"]
            assert STYLES[meta["style"]].tags[0] in stem["tags"]


def test_stems_audible_same_length_and_sum_to_mixture(corpus):
    n = int(SECONDS * SAMPLE_RATE)
    for folder in sorted(corpus.iterdir()):
        meta, stems, mix = _read(folder)
        assert mix.shape == (2, n) and meta["num_samples"] == n
        for name, audio in stems.items():
            assert audio.shape == (2, n), name
            assert rms_db(audio) > AUDIBLE_DB, name
            assert abs(rms_db(audio) - meta["stems"][name]["rms_db"]) < 0.05
        total = np.sum(list(stems.values()), axis=0)
        # each file carries at most half a 24-bit step of rounding error
        assert np.max(np.abs(total - mix)) <= (len(stems) + 1) * 2.0**-23
        assert np.max(np.abs(mix)) <= 0.9 + 1e-6
        assert np.max(np.abs(mix)) > 0.1
        assert np.all(np.abs(mix[:, -10:]) < 0.01)  # faded out at the cut


def test_same_seed_same_song_other_seed_other_song(corpus, tmp_path):
    again = render_song(1, 3, SECONDS, tmp_path / "a", SOUNDFONT)
    meta_a, stems_a, mix_a = _read(corpus / "song_00001")
    meta_b, stems_b, mix_b = _read(again)
    assert meta_a == meta_b
    assert stems_a.keys() == stems_b.keys()
    assert all(np.array_equal(stems_a[k], stems_b[k]) for k in stems_a)
    assert np.array_equal(mix_a, mix_b)
    other = render_song(1, 4, SECONDS, tmp_path / "b", SOUNDFONT)
    meta_c, _, mix_c = _read(other)
    assert meta_c != meta_a
    assert not np.array_equal(mix_c, mix_a)


def test_resume_skips_complete_songs_and_repairs_broken_ones(corpus):
    before = {p: p.stat().st_mtime_ns for p in corpus.glob("song_*/*")}
    build_corpus(corpus, songs=2, seconds=SECONDS, seed=3, soundfont=SOUNDFONT, progress=False)
    assert {p: p.stat().st_mtime_ns for p in corpus.glob("song_*/*")} == before
    meta, stems, _ = _read(corpus / "song_00000")
    victim = corpus / "song_00000" / meta["stems"][next(iter(stems))]["file"]
    victim.unlink()
    build_corpus(corpus, songs=2, seconds=SECONDS, seed=3, soundfont=SOUNDFONT, progress=False)
    assert victim.is_file()
    _, stems_after, _ = _read(corpus / "song_00000")
    assert all(np.array_equal(stems[k], stems_after[k]) for k in stems)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if "song_00001" in str(p))
    with pytest.raises(DatasetError, match="seed 3"):
        build_corpus(corpus, songs=1, seconds=SECONDS, seed=5, soundfont=SOUNDFONT, progress=False)


def test_parallel_jobs_give_identical_songs(corpus, tmp_path):
    paths = build_corpus(tmp_path, songs=2, seconds=SECONDS, seed=3, jobs=2, soundfont=SOUNDFONT,
                         progress=False, start=1)
    assert [p.name for p in paths] == ["song_00001", "song_00002"]
    meta_a, _, mix_a = _read(corpus / "song_00001")
    meta_b, _, mix_b = _read(tmp_path / "song_00001")
    assert meta_a == meta_b and np.array_equal(mix_a, mix_b)
    validate_metadata(json.loads((paths[1] / "metadata.json").read_text()), paths[1])


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert main(["corpus", "--songs", "0", "--seconds", "6", "--out", str(tmp_path / "o")]) == 2
    assert "--songs" in capsys.readouterr().err
    missing = tmp_path / "nope.sf2"
    assert main(["corpus", "--songs", "1", "--seconds", "6", "--out", str(tmp_path / "o"),
                 "--soundfont", str(missing)]) == 2
    assert "soundfont not found" in capsys.readouterr().err
    text = tmp_path / "text.sf2"
    text.write_text("not a soundfont")
    assert main(["corpus", "--songs", "1", "--seconds", "6", "--out", str(tmp_path / "o"),
                 "--soundfont", str(text)]) == 2
    assert "not a SoundFont" in capsys.readouterr().err
    assert main(["corpus", "--songs", "1", "--seconds", "0.5", "--out", str(tmp_path / "o")]) == 2
    assert not any((tmp_path / "o").glob("song_*"))


def test_metadata_validation_messages(corpus):
    meta = json.loads((corpus / "song_00000" / "metadata.json").read_text())
    broken = dict(meta)
    del broken["tempo"]
    with pytest.raises(DatasetError, match="missing field 'tempo'"):
        validate_metadata(broken)
    stem = next(iter(meta["stems"]))
    bad_role = json.loads(json.dumps(meta))
    bad_role["stems"][stem]["role"] = "kazoo"
    with pytest.raises(DatasetError, match="role 'kazoo'"):
        validate_metadata(bad_role)
    bad_type = json.loads(json.dumps(meta))
    bad_type["num_samples"] = True
    with pytest.raises(DatasetError, match="num_samples"):
        validate_metadata(bad_type)
    with pytest.raises(DatasetError, match="does not exist"):
        validate_metadata(meta, corpus)  # the corpus root holds none of the song's files


def test_render_example(tmp_path):
    folder = render_example(tmp_path, seconds=4.0)
    meta = json.loads((folder / "metadata.json").read_text())
    validate_metadata(meta, folder)
    assert sf.info(str(folder / "mixture.flac")).frames == 4 * SAMPLE_RATE
    assert os.access(folder, os.R_OK | os.X_OK)


def test_corpus_stats(corpus):
    stats = corpus_stats(corpus)
    metas = [json.loads(p.read_text()) for p in sorted(corpus.glob("song_*/metadata.json"))]
    assert stats["songs"] == 2
    assert stats["stems"] == sum(len(m["stems"]) for m in metas)
    assert sum(stats["roles"].values()) == stats["stems"]
    assert stats["tempo_range"] == (min(m["tempo"] for m in metas), max(m["tempo"] for m in metas))
    assert "stems_per_song" in format_stats(stats)


def test_failed_song_leaves_nothing_behind(tmp_path):
    truncated = tmp_path / "truncated.sf2"  # a valid header, so the failure comes from FluidSynth mid-song
    truncated.write_bytes(open(SOUNDFONT, "rb").read(100_000))
    with pytest.raises(DiffariffError, match="could not load the soundfont"):
        render_song(0, 1, 4.0, tmp_path / "out", truncated)
    assert not (tmp_path / "out" / "song_00000").exists()
    assert not any((tmp_path / "out" / ".partial").iterdir())
