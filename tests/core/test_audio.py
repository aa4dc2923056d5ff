"""Audio I/O: formats, resampling, channels, loudness, atomic writes and every bad-input case,
on real rendered audio and real files written by the tests."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from diffariff import audio as A
from diffariff import errors as E

SR = 48_000


@pytest.fixture(scope="module")
def piano(render_notes):
    return render_notes(0, [60, 64, 67, 72], seconds=1.5)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_formats(tmp_path, piano, ext):
    path = tmp_path / f"p.{ext}"
    sf.write(str(path), piano.T, SR)
    audio, sr = A.load_audio(path)
    assert sr == SR
    assert audio.dtype == np.float32 and audio.shape[0] == 2
    # lossy codecs may add encoder delay/padding, but the length is close and the content similar
    assert abs(audio.shape[1] - piano.shape[1]) < 0.1 * SR
    n = min(audio.shape[1], piano.shape[1])
    if ext in ("wav", "flac"):
        np.testing.assert_allclose(audio[:, :n], piano[:, :n], atol=1e-4)
    else:
        assert abs(A.loudness(audio, SR) - A.loudness(piano, SR)) < 1.5


@pytest.mark.parametrize("subtype,atol", [("16", 1e-4), ("24", 1e-6), ("float", 0.0)])
def test_save_roundtrip(tmp_path, piano, subtype, atol):
    path = A.save_audio(tmp_path / "out.wav", piano, SR, subtype=subtype)
    back, sr = A.load_audio(path)
    assert sr == SR
    np.testing.assert_allclose(back, piano, atol=atol + 1e-9)
    info = sf.info(str(path))
    assert info.subtype == A.SUBTYPES[subtype]


def test_save_flac_24(tmp_path, piano):
    path = A.save_audio(tmp_path / "out.flac", piano, SR, subtype="24")
    back, _ = A.load_audio(path)
    np.testing.assert_allclose(back, piano, atol=1e-6)


def test_resample_preserves_content(piano):
    down = A.resample(piano, SR, 44_100)
    assert down.shape == (2, round(piano.shape[1] * 44_100 / SR))
    up = A.resample(down, 44_100, SR)
    n = min(up.shape[1], piano.shape[1])
    err = np.sqrt(np.mean((up[:, 1000 : n - 1000] - piano[:, 1000 : n - 1000]) ** 2))
    assert err < 0.01 * np.sqrt(np.mean(piano**2))


def test_load_resamples_and_converts_channels(tmp_path, piano):
    path = tmp_path / "mono44.wav"
    A.save_audio(path, A.resample(piano[:1], SR, 44_100), 44_100, subtype="float")
    audio, sr = A.load_audio(path, sample_rate=SR, channels=2)
    assert sr == SR and audio.shape[0] == 2
    np.testing.assert_array_equal(audio[0], audio[1])


def test_channel_conversion(piano):
    mono = A.to_channels(piano, 1)
    np.testing.assert_allclose(mono[0], piano.mean(axis=0), atol=1e-7)
    stereo = A.to_channels(mono, 2)
    assert stereo.shape == (2, piano.shape[1])
    quad = np.concatenate([piano, piano * 0.5])
    with pytest.warns(UserWarning, match="downmixing 4-channel"):
        down = A.to_channels(quad, 2)
    np.testing.assert_allclose(down[0], quad.mean(axis=0), atol=1e-7)
    with pytest.raises(E.AudioFileError):
        A.to_channels(piano, 3)


def test_loudness_normalisation(piano):
    out = A.normalize_loudness(piano, SR, -20.0, ceiling=None)
    assert abs(A.loudness(out, SR) - (-20.0)) < 0.05
    loud = A.normalize_loudness(piano, SR, -3.0, ceiling=0.9)
    assert np.max(np.abs(loud)) <= 0.9 + 1e-6
    silence = np.zeros((2, SR), np.float32)
    assert A.loudness(silence, SR) == A.SILENCE_LUFS
    np.testing.assert_array_equal(A.normalize_loudness(silence, SR), silence)
    # shorter than one 400 ms gating block still measures
    assert np.isfinite(A.loudness(piano[:, : SR // 10], SR))


def test_missing_file(tmp_path):
    with pytest.raises(E.AudioNotFoundError, match="no such file"):
        A.load_audio(tmp_path / "nope.wav")
    with pytest.raises(E.AudioNotFoundError, match="not a regular file"):
        A.load_audio(tmp_path)


def test_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my lyrics, not audio\n" * 20)
    with pytest.raises(E.NotAudioError, match="not a readable audio file"):
        A.load_audio(path)


def test_empty_and_zero_length(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(E.NotAudioError, match="empty"):
        A.load_audio(tmp_path / "empty.wav")
    sf.write(str(tmp_path / "zero.wav"), np.zeros((0, 2), np.float32), SR)
    with pytest.raises(E.EmptyAudioError):
        A.load_audio(tmp_path / "zero.wav")


@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_truncated_wav(tmp_path, piano, keep):
    full = A.save_audio(tmp_path / "full.wav", piano, SR, subtype="16")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(E.NotAudioError, match="truncated"):
        A.load_audio(cut)


def test_truncated_flac(tmp_path, piano):
    full = A.save_audio(tmp_path / "full.flac", piano, SR, subtype="16")
    data = full.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(E.NotAudioError):
        A.load_audio(cut)


def test_non_finite(tmp_path, piano):
    bad = piano.copy()
    bad[0, 100] = np.nan
    sf.write(str(tmp_path / "nan.wav"), bad.T, SR, subtype="FLOAT")
    with pytest.raises(E.NonFiniteAudioError):
        A.load_audio(tmp_path / "nan.wav")
    bad[0, 100] = np.inf
    with pytest.raises(E.NonFiniteAudioError):
        A.save_audio(tmp_path / "inf.wav", bad, SR)
    assert not (tmp_path / "inf.wav").exists()


def test_absurd_sample_rate(tmp_path, piano):
    sf.write(str(tmp_path / "slow.wav"), piano[:, :1000].T, 1000)
    with pytest.raises(E.SampleRateError, match="1000 Hz"):
        A.load_audio(tmp_path / "slow.wav")
    with pytest.raises(E.SampleRateError):
        A.save_audio(tmp_path / "x.wav", piano, 10)


def test_too_long(tmp_path, piano):
    A.save_audio(tmp_path / "p.wav", piano, SR)
    with pytest.raises(E.AudioTooLongError, match="longer than the limit"):
        A.load_audio(tmp_path / "p.wav", max_seconds=1.0)
    audio, _ = A.load_audio(tmp_path / "p.wav", max_seconds=None)
    assert audio.shape[1] == piano.shape[1]


def test_partial_read(tmp_path, piano):
    A.save_audio(tmp_path / "p.wav", piano, SR, subtype="float")
    part, _ = A.load_audio(tmp_path / "p.wav", offset_seconds=0.5, duration_seconds=0.25)
    np.testing.assert_array_equal(part, piano[:, SR // 2 : SR // 2 + SR // 4])


def test_atomic_write_failure_leaves_nothing(tmp_path, piano, monkeypatch):
    target = tmp_path / "out.wav"
    A.save_audio(target, piano * 0.5, SR)
    before = target.read_bytes()

    def exploding_write(*args, **kwargs):
        with open(args[0], "wb") as fh:  # a partial file, then a crash mid-write
            fh.write(b"RIFF")
        raise OSError("disk full")

    monkeypatch.setattr(A.sf, "write", exploding_write)
    with pytest.raises(OSError, match="disk full"):
        A.save_audio(target, piano, SR)
    assert target.read_bytes() == before  # old file intact
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]  # no temp file left


def test_save_refuses_bad_requests(tmp_path, piano):
    with pytest.raises(E.AudioFileError, match="can only write"):
        A.save_audio(tmp_path / "x.mp3", piano, SR)
    with pytest.raises(E.AudioFileError, match="flac cannot store float"):
        A.save_audio(tmp_path / "x.flac", piano, SR, subtype="float")
    with pytest.raises(E.EmptyAudioError):
        A.save_audio(tmp_path / "x.wav", np.zeros((2, 0), np.float32), SR)
    assert list(tmp_path.iterdir()) == []
