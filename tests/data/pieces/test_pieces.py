"""The pieces corpus on tiny real inputs: a 2-bar music21 score and a tiny MIDI file made here, rendered
through the real engine and soundfont into song folders, read back and checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from diffariff.cli import main
from diffariff.data.pieces.arrange import prepare
from diffariff.data.pieces.build import (
    build_pieces_corpus,
    piece_order,
    render_piece_songs,
    song_complete,
    split_of_piece,
)
from diffariff.data.pieces.harmony import estimate_key, harmonise, pitch_class_histogram
from diffariff.data.pieces.inventory import (
    PieceRef,
    ReservedPieceError,
    check_not_reserved,
    file_refs,
    is_bach,
    music21_refs,
)
from diffariff.data.pieces.midi_load import load_midi
from diffariff.data.pieces.model import Part, TimedNote
from diffariff.data.pieces.music21_load import load_music21, piece_from_score, ref_for_score
from diffariff.data.pieces.roles import assign_roles
from diffariff.data.synth.metadata import validate_metadata
from diffariff.data.synth.render import training_soundfonts
from diffariff.errors import DatasetError

SR = 48_000
SMALL = next((str(s.path) for s in training_soundfonts(("gm",)) if s.name == "TimGM6mb"), None)
DRUMS = [str(s.path) for s in training_soundfonts(("drums-only",))]
FONTS = [SMALL, *DRUMS[:1]] if SMALL else None
pytestmark = pytest.mark.skipif(SMALL is None, reason="timgm6mb-soundfont is not installed")
SECONDS = 3.0


def _score(composer: str | None = None, parts: int = 2):
    """Two bars of 4/4 at 120 qpm: a C-major melody over a bass line (or the melody alone)."""
    from music21 import metadata, meter, note, stream, tempo

    score = stream.Score()
    score.metadata = metadata.Metadata(title="two bars")
    if composer:
        score.metadata.composer = composer
    lines = [("Soprano", ["C5", "E5", "G5", "E5", "F5", "D5", "B4", "C5"]),
             ("Bass", ["C3", "C3", "G2", "G2", "F2", "F2", "G2", "C3"])][:parts]
    for name, pitches in lines:
        part = stream.Part()
        part.partName = name
        m1 = stream.Measure(number=1)
        m1.append(meter.TimeSignature("4/4"))
        m1.append(tempo.MetronomeMark(number=120))
        m2 = stream.Measure(number=2)
        for i, p in enumerate(pitches):
            (m1 if i < 4 else m2).append(note.Note(p, quarterLength=1.0))
        part.append([m1, m2])
        score.insert(0, part)
    return score


def _read(folder: Path):
    meta = json.loads((folder / "metadata.json").read_text())
    stems = {k: sf.read(folder / s["file"], dtype="float64", always_2d=True)[0].T for k, s in meta["stems"].items()}
    mix = sf.read(folder / meta["mixture"], dtype="float64", always_2d=True)[0].T
    return meta, stems, mix


def _check_song(folder: Path) -> dict:
    meta, stems, mix = _read(folder)
    validate_metadata(meta, folder)
    n = int(SECONDS * SR)
    assert mix.shape == (2, n) and all(s.shape == (2, n) for s in stems.values())
    total = np.sum(list(stems.values()), axis=0)
    assert np.max(np.abs(total - mix)) <= (len(stems) + 1) * 2.0**-23  # 24-bit rounding of each file
    for name, audio in stems.items():
        assert 20 * np.log10(np.sqrt(np.mean(audio**2))) > -50, name
    assert not (folder.parent / ".partial").exists()
    return meta


def _chroma_peak(audio: np.ndarray) -> int:
    x = audio.mean(axis=0)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    keep = (freqs > 60) & (freqs < 2000)
    pcs = np.round(12 * np.log2(freqs[keep] / 440.0) + 69).astype(int) % 12
    return int(np.argmax(np.bincount(pcs, weights=spec[keep] ** 2, minlength=12)))


def test_a_score_becomes_valid_song_folders(tmp_path):
    piece = piece_from_score(_score(), ref_for_score(_score(), title="two-bars"))
    assert [p.name for p in piece.parts] == ["Soprano", "Bass"] and piece.tempo_marked
    assert [round(b.second, 6) for b in piece.bars] == [0.0, 2.0] and piece.end == pytest.approx(4.0)
    paths = render_piece_songs(piece, tmp_path, seed=1, seconds=SECONDS, soundfonts=FONTS)
    assert [p.name for p in paths] == ["song_1000000"]  # 4 s of music: one 3-s window
    meta = _check_song(paths[0])
    assert {s["role"] for s in meta["stems"].values()} == {"lead", "bass"}
    assert meta["source_id"] == piece.id and meta["composer"] and meta["split"] == split_of_piece(piece.id)
    assert meta["bars"][0] == 0.0 and meta["meter"] == [4, 4]
    assert 0.9 * 120 <= meta["tempo"] <= 1.1 * 120
    assert meta["key"] == ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"][meta["transpose"] % 12]
    _, stems, _ = _read(paths[0])
    bass = next(k for k, s in meta["stems"].items() if s["role"] == "bass")
    assert meta["stems"][bass]["register"] == "low"
    # the bass plays C C G G F F: pitch class C (or G) dominates, moved by the transposition
    assert _chroma_peak(stems[bass]) in {(0 + meta["transpose"]) % 12, (7 + meta["transpose"]) % 12}


def test_a_single_tune_gets_a_derived_bass_and_chords(tmp_path):
    score = _score(parts=1)
    piece = piece_from_score(score, ref_for_score(score, title="tune", genre="folk tune"))
    prep = prepare(piece, seed=0, seconds=SECONDS)
    assert prep.piece.harmonised and prep.roles == ["lead", "bass", "chords"]
    assert [p.derived for p in prep.piece.parts] == [False, True, True]
    key = estimate_key(pitch_class_histogram(piece.parts[0].notes))
    assert (key.tonic, key.mode) == (0, "major")
    chords = harmonise(piece, piece.parts[0].notes, key)
    assert chords[0][2].symbol == "C" and chords[-1][2].symbol == "C"  # starts and ends on the tonic
    paths = render_piece_songs(piece, tmp_path, seed=0, seconds=SECONDS, soundfonts=FONTS)
    meta = _check_song(paths[0])
    assert meta["harmonised"] and {s["derived"] for s in meta["stems"].values()} == {False, True}
    assert meta["progression"][0] in {"C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"}


def _tiny_midi(path: Path) -> Path:
    """2 bars at 100 bpm: drums (channel 10), a bass (program 33) and a flute melody (program 73)."""
    mid = mido.MidiFile(ticks_per_beat=96)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=600_000, time=0),
                                mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)])
    mid.tracks.append(conductor)
    for name, ch, program, pitches in (("Drums", 9, 0, [36, 38, 36, 38] * 2), ("Bass", 1, 33, [36, 36, 43, 43] * 2),
                                       ("Melody", 0, 73, [72, 74, 76, 77, 79, 77, 76, 72])):
        tr = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0),
                             mido.Message("program_change", channel=ch, program=program, time=0)])
        for p in pitches:
            tr.append(mido.Message("note_on", channel=ch, note=p, velocity=90, time=0))
            tr.append(mido.Message("note_off", channel=ch, note=p, velocity=0, time=96))
        mid.tracks.append(tr)
    mid.save(str(path))
    return path


def test_a_midi_file_becomes_stems_per_channel(tmp_path):
    ref = file_refs([str(_tiny_midi(tmp_path / "tiny.mid"))])[0]
    piece = load_midi(ref)
    assert [(p.name, p.is_drum, p.program) for p in piece.parts] == [("Melody", False, 73), ("Bass", False, 33),
                                                                      ("Drums", True, 0)]
    assert piece.end == pytest.approx(4.8) and len(piece.bars) == 2
    assert assign_roles(piece.parts) == ["lead", "bass", "drums"]
    paths = render_piece_songs(piece, tmp_path / "out", seed=0, seconds=SECONDS, soundfonts=FONTS)
    meta = _check_song(paths[0])
    drums = meta["stems"]["drums"]
    assert drums["is_drum"] and drums["soundfont"] in {Path(f).name for f in FONTS}
    assert {s["role"] for s in meta["stems"].values()} == {"lead", "bass", "drums"}


def test_bach_is_refused_everywhere():
    assert is_bach("J.S. Bach") and is_bach("bach/bwv66.6.mxl") and is_bach("Carl Philipp Emanuel Bach")
    with pytest.raises(ReservedPieceError):
        check_not_reserved("bach/bwv66.6.mxl")
    with pytest.raises(ReservedPieceError):
        check_not_reserved("cpebach/h186.mxl")
    with pytest.raises(ReservedPieceError):  # by composer, whatever the path
        piece_from_score(_score("Johann Sebastian Bach"), ref_for_score(_score(), title="chorale"))
    with pytest.raises(ReservedPieceError):  # refused before music21 reads a byte
        load_music21(PieceRef("music21", "bach/bwv66.6.mxl", None, "choral", "bach", "J.S. Bach", "x", "-"))
    refs = music21_refs()
    assert len(refs) > 10_000
    assert not any(is_bach(r.path) or is_bach(r.composer) or r.collection in ("bach", "cpebach") for r in refs)


def test_splits_follow_the_piece_and_composers_can_be_held_out(tmp_path):
    score = _score()
    piece = piece_from_score(score, ref_for_score(score, title="long"))
    piece.parts = [Part(p.name, [TimedNote(n.start + 4.0 * k, n.end + 4.0 * k, n.pitch, n.velocity)
                                 for k in range(3) for n in p.notes]) for p in piece.parts]
    from diffariff.data.pieces.model import Bar

    piece.bars = [Bar(2.0 * i * 2, 2.0 * i, (4, 4)) for i in range(6)]
    piece.end = 12.0
    paths = render_piece_songs(piece, tmp_path / "a", seed=0, seconds=SECONDS, soundfonts=FONTS, max_windows=3)
    metas = [json.loads((p / "metadata.json").read_text()) for p in paths]
    assert len(metas) == 3 and len({m["split"] for m in metas}) == 1
    assert [m["piece_window"] for m in metas] == [0, 1, 2]
    held = render_piece_songs(piece, tmp_path / "b", seed=0, seconds=SECONDS, soundfonts=FONTS, max_windows=1,
                              holdout=("local",))
    meta = json.loads((held[0] / "metadata.json").read_text())
    assert meta["split"] == "test" and meta["holdout"] == "composer"


def test_order_interleaves_genres():
    refs = [PieceRef("music21", f"{g}/{i}", None, g, g, "x", "t", "-")
            for g in ("folk tune", "choral", "string quartet") for i in range(3)]
    order = piece_order(refs, seed=0)
    assert [r.genre for r in order[:3]] == ["string quartet", "choral", "folk tune"]
    assert piece_order(refs, seed=0) == order and piece_order(refs, seed=1) != order


def test_corpus_build_is_resumable_and_keeps_its_settings(tmp_path):
    refs = file_refs([str(_tiny_midi(tmp_path / "tiny.mid"))])
    out = tmp_path / "corpus"
    paths = build_pieces_corpus(out, songs=1, seconds=SECONDS, seed=3, soundfonts=FONTS, progress=False, refs=refs)
    assert [p.name for p in paths] == ["song_1000000"]
    assert song_complete(paths[0], refs[0].id, 3, SECONDS)
    stamp = os.stat(paths[0] / "metadata.json").st_mtime_ns
    again = build_pieces_corpus(out, songs=1, seconds=SECONDS, seed=3, soundfonts=FONTS, progress=False, refs=refs)
    assert again == paths and os.stat(paths[0] / "metadata.json").st_mtime_ns == stamp  # skipped, not redone
    with pytest.raises(DatasetError, match="another --out"):
        build_pieces_corpus(out, songs=1, seconds=SECONDS, seed=4, soundfonts=FONTS, progress=False, refs=refs)


def test_cli_renders_piece_files(tmp_path, capsys):
    midi = _tiny_midi(tmp_path / "tiny.mid")
    out = tmp_path / "cli"
    assert main(["corpus", "--source", "pieces", "--piece-files", str(midi), "--songs", "1", "--seconds",
                 str(SECONDS), "--out", str(out), "--soundfonts", ",".join(FONTS), "--quiet"]) == 0
    assert "1 songs" in capsys.readouterr().out
    _check_song(out / "song_1000000")
    bach = tmp_path / "bach_invention.mid"
    bach.write_bytes(midi.read_bytes())
    assert main(["corpus", "--source", "pieces", "--piece-files", str(bach), "--songs", "1", "--out",
                 str(out), "--quiet"]) == 2  # reserved: a one-line error, exit code 2
    assert main(["corpus", "--source", "pieces", "--piece-files", str(midi), "--songs", "1", "--out", str(out),
                 "--soundfonts", "/usr/share/sounds/sf3/MuseScore_General.sf3", "--quiet"]) == 2


def test_a_tune_with_chord_symbols_keeps_them():
    score = _score(parts=1)
    piece = piece_from_score(score, ref_for_score(score, title="tune"))
    piece.chords = [(0.0, "Am"), (1.0, "F"), (2.0, "G7"), (3.0, "C")]
    chords = harmonise(piece, piece.parts[0].notes, estimate_key(pitch_class_histogram(piece.parts[0].notes)))
    assert [(round(a, 6), c.symbol) for a, _, c in chords] == [(0.0, "Am"), (1.0, "F"), (2.0, "G7"), (3.0, "C")]


@pytest.mark.slow
def test_the_real_inventory_renders_in_parallel(tmp_path):
    """The first pieces of the real order (a string quartet, a choral work...) with two workers."""
    paths = build_pieces_corpus(tmp_path, songs=3, seconds=10.0, seed=0, jobs=2, progress=False, max_windows=1)
    assert len(paths) >= 3
    genres = set()
    for p in paths:
        meta = json.loads((p / "metadata.json").read_text())
        validate_metadata(meta, p)
        genres.add(meta["style"])
        assert not is_bach(meta["composer"])
    assert len(genres) >= 3  # the order interleaves genres
