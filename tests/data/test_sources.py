"""Multitrack dataset adapters on tiny trees in each real layout, built from rendered audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from diffariff.audio import load_audio, resample, save_audio
from diffariff.data.songs import Song, guess_labels
from diffariff.data.sources import (
    detect_layout,
    load_folder,
    load_medleydb,
    load_moisesdb,
    load_musdb,
    load_slakh,
    open_dataset,
)
from diffariff.errors import DatasetError, InputError

SR = 48_000
SECONDS = 2.0


@pytest.fixture(scope="module")
def audio(render_notes):
    """Rendered stems at 48 kHz stereo, 2 s each."""
    return {
        "bass": render_notes(33, [36, 40, 43, 41, 36, 38, 43, 40], seconds=SECONDS),
        "piano": render_notes(0, [60, 64, 67, 72, 65, 69, 72, 77], seconds=SECONDS),
        "drums": render_notes(0, [36, 42, 38, 42, 36, 42, 38, 46], drum=True, seconds=SECONDS),
        "voice": render_notes(52, [67, 69, 71, 72, 74, 72, 71, 69], seconds=SECONDS),
    }


def _at(audio: np.ndarray, sr: int, mono: bool = False) -> np.ndarray:
    out = resample(audio, SR, sr)
    return out.mean(axis=0, keepdims=True) if mono else out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.shape[-1], b.shape[-1])
    a, b = a[..., :n].ravel(), b[..., :n].ravel()
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# ------------------------------------------------------------------------------------------ trees


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory, audio):
    root = tmp_path_factory.mktemp("folder")
    a = root / "song_a"
    save_audio(a / "bass.wav", audio["bass"], SR)
    save_audio(a / "drums.flac", audio["drums"], SR)
    save_audio(a / "vocals.wav", audio["voice"], SR)
    save_audio(a / "mixture.wav", audio["bass"] + audio["drums"], SR)
    save_audio(a / "Lead Piano.wav", audio["piano"][:, : SR], SR)  # 1 s: the song's shortest stem
    b = root / "song_b"
    save_audio(b / "keys.wav", audio["piano"], SR)
    save_audio(b / "bass.wav", audio["bass"], SR)
    save_audio(b / "mix.wav", audio["piano"], SR)
    (root / "splits.json").write_text(json.dumps({"train": ["song_a"], "test": ["song_b"]}))
    c = root / "song_c"  # the diffariff corpus format
    save_audio(c / "stem_0.wav", audio["bass"], SR)
    save_audio(c / "stem_1.wav", audio["piano"], SR)
    save_audio(c / "extra.wav", audio["drums"], SR)  # not in metadata.json: ignored
    meta = {
        "split": "validation", "key": "C", "mode": "major", "tempo": 120.0, "style": "funk",
        "stems": {
            "bass": {"file": "stem_0.wav", "role": "bass", "instrument": "Electric Bass (finger)",
                     "family": "bass", "program": 33, "is_drum": False, "tags": ["electric bass", "warm"]},
            "chords": {"file": "stem_1.wav", "role": "harmony", "instrument": "Acoustic Grand Piano",
                       "family": "piano", "program": 0, "is_drum": False, "tags": ["piano"]},
        },
    }
    (c / "metadata.json").write_text(json.dumps(meta))
    (root / "notes").mkdir()  # a folder without audio is ignored
    return root


@pytest.fixture(scope="module")
def musdb_root(tmp_path_factory, audio):
    root = tmp_path_factory.mktemp("musdb")
    for split, track in (("train", "Artist - Song"), ("test", "Other - Tune")):
        d = root / split / track
        for name, key in (("drums", "drums"), ("bass", "bass"), ("other", "piano"), ("vocals", "voice")):
            save_audio(d / f"{name}.wav", _at(audio[key], 44_100), 44_100)
        save_audio(d / "mixture.wav", _at(audio["bass"] + audio["piano"], 44_100), 44_100)
    return root


def _slakh_meta(stems: dict) -> dict:
    return {"UUID": "abc123", "audio_dir": "stems", "midi_dir": "MIDI", "overall_gain": 0.5, "stems": stems}


def _slakh_track(d, audio, rendered_false: bool = True):
    stems = {
        "S00": {"audio_rendered": True, "inst_class": "Bass", "is_drum": False,
                "midi_program_name": "Electric Bass (finger)", "program_num": 33, "plugin_name": "a.nkm"},
        "S01": {"audio_rendered": True, "inst_class": "Piano", "is_drum": False,
                "midi_program_name": "Acoustic Grand Piano", "program_num": 0, "plugin_name": "b.nkm"},
        "S02": {"audio_rendered": True, "inst_class": "Drums", "is_drum": True,
                "midi_program_name": "Standard Kit", "program_num": 128, "plugin_name": "c.nkm"},
        "S03": {"audio_rendered": False, "inst_class": "Guitar", "is_drum": False,
                "midi_program_name": "Distortion Guitar", "program_num": 30, "plugin_name": "d.nkm"},
        "S04": {"audio_rendered": True, "inst_class": "Strings (continued)", "is_drum": False,
                "midi_program_name": "String Ensemble 1", "program_num": 48, "plugin_name": "e.nkm"},
    }
    (d / "MIDI").mkdir(parents=True)
    for name, key in (("S00", "bass"), ("S01", "piano"), ("S02", "drums"), ("S03", "piano")):
        save_audio(d / "stems" / f"{name}.flac", _at(audio[key], 44_100, mono=True), 44_100, subtype="16")
    # S04 is rendered according to the metadata but its file is missing: skipped.
    save_audio(d / "mix.flac", _at(audio["bass"] + audio["piano"], 44_100, mono=True), 44_100, subtype="16")
    (d / "metadata.yaml").write_text(yaml.safe_dump(_slakh_meta(stems)))


@pytest.fixture(scope="module")
def slakh_root(tmp_path_factory, audio):
    root = tmp_path_factory.mktemp("slakh")
    _slakh_track(root / "Track00001", audio)
    _slakh_track(root / "Track00002", audio)
    (root / "splits.json").write_text(json.dumps({"train": ["Track00001"], "test": ["Track00002"]}))
    return root


@pytest.fixture(scope="module")
def moises_root(tmp_path_factory, audio):
    root = tmp_path_factory.mktemp("moises")
    song = root / "provider_a" / "0a1b2c3d-uuid"
    meta = {
        "song": "Tune", "artist": "Band", "genre": "Pop",
        "stems": [
            {"stemName": "bass", "tracks": [
                {"id": "t-bass-1", "extension": "wav", "trackType": "bass guitar", "has_bleed": False},
                {"id": "t-bass-2", "extension": "wav", "trackType": "bass synthesizer (moog etc)",
                 "has_bleed": True}]},
            {"stemName": "vocals", "tracks": [
                {"id": "t-voc", "extension": "wav", "trackType": "lead female singer", "has_bleed": False}]},
            {"stemName": "other_keys", "tracks": [
                {"id": "t-keys", "extension": "wav", "trackType": "synth pad", "has_bleed": False}]},
        ],
    }
    (song).mkdir(parents=True)
    (song / "data.json").write_text(json.dumps(meta))
    save_audio(song / "bass" / "t-bass-1.wav", _at(audio["bass"], 44_100), 44_100)
    save_audio(song / "bass" / "t-bass-2.wav", _at(0.5 * audio["piano"][:, : SR], 44_100), 44_100)  # 1 s
    save_audio(song / "vocals" / "t-voc.wav", _at(audio["voice"], 44_100), 44_100)
    save_audio(song / "other_keys" / "t-keys.wav", _at(audio["piano"], 44_100), 44_100)
    return root


def _medley_track(root, audio, name: str, meta_beside: bool):
    d = root / "Audio" / name
    stems = {
        "S01": {"filename": f"{name}_STEM_01.wav", "instrument": "electric bass", "component": "bass"},
        "S02": {"filename": f"{name}_STEM_02.wav", "instrument": "drum set", "component": ""},
        "S03": {"filename": f"{name}_STEM_03.wav", "instrument": "female singer", "component": "melody"},
        "S04": {"filename": f"{name}_STEM_04.wav", "instrument": "piano", "component": "melody"},
    }
    for key, src in (("S01", "bass"), ("S02", "drums"), ("S03", "voice"), ("S04", "piano")):
        save_audio(d / f"{name}_STEMS" / stems[key]["filename"], _at(audio[src], 44_100), 44_100)
    meta = {"artist": "Someone", "title": name, "genre": "Singer/Songwriter", "has_bleed": "no",
            "mix_filename": f"{name}_MIX.wav", "stem_dir": f"{name}_STEMS", "stems": stems}
    meta_path = d / f"{name}_METADATA.yaml" if meta_beside else root / "Metadata" / f"{name}_METADATA.yaml"
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(yaml.safe_dump(meta))


@pytest.fixture(scope="module")
def medley_root(tmp_path_factory, audio):
    root = tmp_path_factory.mktemp("medley")
    _medley_track(root, audio, "Artist_Song", meta_beside=True)
    _medley_track(root, audio, "Other_Tune", meta_beside=False)
    return root


# ------------------------------------------------------------------------------------------ tests


def test_folder_layout_guesses_labels_and_skips_mixes(folder_root, audio):
    songs = load_folder(folder_root)
    assert [s.name for s in songs] == ["song_a", "song_b", "song_c"]
    a, b, _ = songs
    assert set(a.stems) == {"bass", "drums", "vocals", "Lead Piano"}
    assert set(b.stems) == {"keys", "bass"}
    assert (a.stems["bass"].role, a.stems["drums"].role, a.stems["vocals"].role) == ("bass", "drums", "vocals")
    assert a.stems["vocals"].is_vocal and not a.stems["bass"].is_vocal
    assert b.stems["keys"].family == "piano"
    assert sorted(a.target_stems()) == ["Lead Piano", "bass", "drums"]
    assert (a.split, b.split, a.source) == ("train", "test", "folder")
    assert a.duration_seconds() == pytest.approx(1.0, abs=1e-4)  # the shortest stem
    loaded = a.load_stem("bass")
    assert loaded.dtype == np.float32 and loaded.shape == (2, int(SECONDS * SR))
    np.testing.assert_allclose(loaded, load_audio(a.stems["bass"].files[0])[0], atol=1e-6)
    assert [s.name for s in open_dataset(folder_root, split="test")] == ["song_b"]


def test_folder_metadata_json_is_authoritative(folder_root):
    song = {s.name: s for s in load_folder(folder_root)}["song_c"]
    assert set(song.stems) == {"bass", "chords"}  # extra.wav is not listed
    bass = song.stems["bass"]
    assert (bass.role, bass.family, bass.instrument) == ("bass", "bass", "Electric Bass (finger)")
    assert bass.tags == ("electric bass", "warm")
    assert bass.meta["program"] == 33 and bass.meta["is_drum"] is False
    assert song.split == "validation"
    assert song.tags == {"key": "C", "mode": "major", "tempo": 120.0, "style": "funk"}


def test_stem_span_reads_pad_and_mix(folder_root, audio):
    song = {s.name: s for s in load_folder(folder_root)}["song_a"]
    full = song.load_stem("bass")
    span = song.load_stem("bass", offset_seconds=0.5, duration_seconds=0.25)
    np.testing.assert_allclose(span, full[:, SR // 2: SR // 2 + SR // 4], atol=1e-6)
    tail = song.load_stem("Lead Piano", offset_seconds=0.5, duration_seconds=1.0)  # file is 1 s long
    assert tail.shape == (2, SR)
    assert np.any(tail[:, : SR // 2]) and not np.any(tail[:, SR // 2:])
    assert not np.any(song.load_stem("bass", offset_seconds=5.0, duration_seconds=0.5))
    mono = song.load_stem("bass", channels=1, duration_seconds=0.5)
    np.testing.assert_allclose(mono[0], full[:, : SR // 2].mean(axis=0), atol=1e-6)
    mix = song.load_mix(["bass", "drums"], offset_seconds=0.2, duration_seconds=1.0)
    want = song.load_stem("bass", offset_seconds=0.2, duration_seconds=1.0) + song.load_stem(
        "drums", offset_seconds=0.2, duration_seconds=1.0)
    np.testing.assert_allclose(mix, want, atol=1e-6)
    assert not np.any(song.load_mix([], duration_seconds=0.5)) and song.load_mix([], duration_seconds=0.5).shape == (2, SR // 2)


def test_musdb_layout(musdb_root, audio):
    songs = load_musdb(musdb_root)
    assert [(s.name, s.split) for s in songs] == [("Artist - Song", "train"), ("Other - Tune", "test")]
    song = songs[0]
    assert set(song.stems) == {"drums", "bass", "other", "vocals"}
    assert song.stems["vocals"].is_vocal and "vocals" not in song.target_stems()
    assert song.stems["drums"].role == "drums" and song.stems["other"].role == "other"
    bass = song.load_stem("bass")  # 44.1 kHz on disk, resampled to 48 kHz
    assert bass.shape == (2, int(SECONDS * SR))
    assert _corr(bass, audio["bass"]) > 0.99
    # A resampled span matches the same span of the fully resampled file.
    span = song.load_stem("bass", offset_seconds=0.75, duration_seconds=0.5)
    np.testing.assert_allclose(span, bass[:, 36_000:60_000], atol=2e-3)
    assert [s.name for s in load_musdb(musdb_root, split="test")] == ["Other - Tune"]


def test_slakh_layout_skips_unrendered_and_missing(slakh_root, audio):
    songs = load_slakh(slakh_root)
    assert [(s.name, s.split) for s in songs] == [("Track00001", "train"), ("Track00002", "test")]
    song = songs[0]
    assert set(song.stems) == {"S00", "S01", "S02"}  # S03 not rendered, S04 file missing
    s0, s2 = song.stems["S00"], song.stems["S02"]
    assert (s0.role, s0.family, s0.instrument) == ("bass", "bass", "electric bass (finger)")
    assert s0.tags == ("electric bass (finger)", "bass") and s0.meta["program_num"] == 33
    assert (s2.role, s2.family) == ("drums", "drums")
    stereo = song.load_stem("S00")  # mono 44.1 kHz flac -> stereo 48 kHz
    assert stereo.shape == (2, int(SECONDS * SR))
    np.testing.assert_array_equal(stereo[0], stereo[1])
    assert _corr(stereo[:1], audio["bass"].mean(axis=0, keepdims=True)) > 0.99


def test_slakh_split_folders(tmp_path, audio):
    _slakh_track(tmp_path / "train" / "Track00010", audio)
    _slakh_track(tmp_path / "validation" / "Track00020", audio)
    songs = open_dataset(tmp_path)
    assert [(s.name, s.split, s.source) for s in songs] == [("Track00010", "train", "slakh"),
                                                           ("Track00020", "validation", "slakh")]


def test_moisesdb_sums_tracks(moises_root):
    (song,) = load_moisesdb(moises_root)
    assert song.name == "0a1b2c3d-uuid" and song.tags["provider"] == "provider_a"
    assert set(song.stems) == {"bass", "vocals", "other_keys"}
    bass = song.stems["bass"]
    assert len(bass.files) == 2 and bass.role == "bass" and bass.meta["has_bleed"]
    assert "bass guitar" in bass.tags and "pop" in bass.tags
    assert song.stems["vocals"].is_vocal and song.stems["other_keys"].role == "chords"
    loaded = song.load_stem("bass")
    assert loaded.shape == (2, int(SECONDS * SR))
    parts = [load_audio(p, sample_rate=SR, channels=2)[0] for p in bass.files]
    want = parts[0].copy()
    want[:, : parts[1].shape[1]] += parts[1]
    np.testing.assert_allclose(loaded, want[:, : loaded.shape[1]], atol=2e-3)
    assert np.abs(loaded - parts[0][:, : loaded.shape[1]]).max() > 0.01  # the second track is really in


def test_medleydb_layout(medley_root):
    songs = load_medleydb(medley_root)
    assert [s.name for s in songs] == ["Artist_Song", "Other_Tune"]
    for song in songs:  # metadata beside the audio and in Metadata/
        assert set(song.stems) == {"S01", "S02", "S03", "S04"}
        assert song.stems["S03"].is_vocal and song.stems["S03"].role == "vocals"
        assert song.stems["S01"].role == "bass" and song.stems["S02"].role == "drums"
        assert song.stems["S04"].role == "lead" and song.stems["S04"].family == "piano"
        assert "singer/songwriter" in song.stems["S01"].tags
        assert song.load_stem("S01", duration_seconds=1.0).shape == (2, SR)
    assert load_medleydb(medley_root / "Audio")[0].name == "Artist_Song"


@pytest.mark.parametrize("name,layout", [("folder_root", "folder"), ("musdb_root", "musdb"),
                                         ("slakh_root", "slakh"), ("moises_root", "moisesdb"),
                                         ("medley_root", "medleydb")])
def test_auto_detection(request, name, layout):
    root = request.getfixturevalue(name)
    assert detect_layout(root) == layout
    songs = open_dataset(root)
    assert songs and all(isinstance(s, Song) and s.source == layout for s in songs)


def test_guess_labels():
    assert guess_labels("Bass DI") == ("bass", "bass", False)
    assert guess_labels("bassoon")[0] == "lead"
    assert guess_labels("Synth Pad 2")[0] == "pad"
    assert guess_labels("kickdrum")[0] == "drums"
    assert guess_labels("lead_vox") == ("vocals", "vocals", True)
    assert guess_labels("custom")[0] == "other"


def test_errors_name_the_problem(tmp_path, slakh_root, moises_root):
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "junk" / "x").mkdir(parents=True)
    (tmp_path / "junk" / "x" / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError, match="unrecognised dataset layout"):
        open_dataset(tmp_path / "junk")
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        open_dataset(slakh_root, layout="stems")
    with pytest.raises(DatasetError, match="not a MUSDB18-HQ"):
        load_musdb(slakh_root)
    with pytest.raises(DatasetError, match="no songs in split 'holdout'"):
        open_dataset(slakh_root, split="holdout")
    bad = tmp_path / "slakh_bad" / "Track00003"
    bad.mkdir(parents=True)
    (bad / "metadata.yaml").write_text("stems: [unclosed\n")
    with pytest.raises(DatasetError, match=r"Track00003/metadata\.yaml: malformed YAML") as err:
        open_dataset(tmp_path / "slakh_bad")
    assert "\n" not in str(err.value) and isinstance(err.value, InputError)
    (bad / "metadata.yaml").write_text("stems: 3\n")
    with pytest.raises(DatasetError, match="'stems' must be a mapping"):
        load_slakh(tmp_path / "slakh_bad")
    broken = tmp_path / "moises_bad" / "p" / "u1"
    broken.mkdir(parents=True)
    (broken / "data.json").write_text('{"stems": [{"stemName": "bass", "tracks": [{"id": "gone"}]}]}')
    with pytest.raises(DatasetError, match=r"gone\.wav is missing"):
        load_moisesdb(tmp_path / "moises_bad")
    (broken / "data.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"u1/data\.json: malformed JSON"):
        open_dataset(tmp_path / "moises_bad")
