"""A folder of odd context files, each run through ``diffariff generate`` as a new user would: every file
ends in a correct stem (exit 0, finite audio of the context's length) or in one clean error line (exit 2),
never a traceback, a partial or temporary file, or a changed input."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from diffariff.cli import main
from diffariff.testing import make_tiny_bundle

SR = 48_000


def tone(seconds: float, sr: int = SR, channels: int = 2, level: float = 0.2) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = level * np.sin(2 * np.pi * 220.0 * t) * np.exp(-t)
    return np.stack([x * (1 - 0.05 * c) for c in range(channels)]).T.astype(np.float32)  # [N, C]


#: name -> (how to make it, the outcome: "ok" or a phrase of the one error line)
def _odd_files(folder) -> dict:
    made = {}

    def write(name, data, sr=SR, subtype="PCM_16", fmt=None):
        sf.write(str(folder / name), data, sr, subtype=subtype, format=fmt)

    write("ok_48k.wav", tone(1.0))
    write("mono_44k1_24bit.wav", tone(1.0, 44_100, 1), 44_100, "PCM_24")
    write("low_rate_8k.wav", tone(1.0, 8_000), 8_000)
    write("high_rate_192k.flac", tone(0.8, 192_000), 192_000, "PCM_24")
    write("eight_channels.wav", tone(1.0, channels=8))
    write("silence.wav", np.zeros((SR, 2), np.float32))
    write("clipped_full_scale.wav", np.clip(tone(1.0, level=5.0), -1, 1), subtype="FLOAT")
    write("ogg_vorbis.ogg", tone(1.0), fmt="OGG", subtype="VORBIS")
    made.update({k: "ok" for k in ("ok_48k.wav", "mono_44k1_24bit.wav", "low_rate_8k.wav", "high_rate_192k.flac",
                                   "eight_channels.wav", "silence.wav", "clipped_full_scale.wav", "ogg_vorbis.ogg")})
    nan = tone(1.0)
    nan[100, 0] = np.nan
    write("nan_sample.wav", nan, subtype="FLOAT")
    inf = tone(1.0)
    inf[5, 1] = np.inf
    write("inf_sample.wav", inf, subtype="FLOAT")
    write("one_sample.wav", tone(1.0)[:1])
    write("no_samples.wav", np.zeros((0, 2), np.float32))
    write("too_short_0.3s.wav", tone(0.3))
    write("too_low_rate_2k.wav", tone(1.0, 2_000), 2_000)
    (folder / "empty_file.wav").write_bytes(b"")
    (folder / "lyrics.wav").write_text("la la la\n")
    good = (folder / "ok_48k.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(good[:30])
    (folder / "folder.wav").mkdir()
    made.update({"nan_sample.wav": "NaN", "inf_sample.wav": "NaN or infinite", "one_sample.wav": "at least 0.5 s",
                 "no_samples.wav": "no audio", "too_short_0.3s.wav": "at least 0.5 s",
                 "too_low_rate_2k.wav": "sample rate", "empty_file.wav": "", "lyrics.wav": "not a readable audio",
                 "truncated.wav": "", "folder.wav": ""})
    return made


def test_a_folder_of_odd_contexts(tmp_path, capsys):
    bundle = make_tiny_bundle(tmp_path / "tiny", train_frames=24, modes=("consistency",), codec="synth").root
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    expected = _odd_files(inputs)
    before = {p.name: p.read_bytes() for p in inputs.iterdir() if p.is_file()}
    outs = tmp_path / "outs"
    outs.mkdir()
    results = {}
    for name, outcome in sorted(expected.items()):
        out = outs / f"{name}.stem.wav"
        code = main(["generate", str(inputs / name), "-o", str(out), "--bundle", str(bundle), "--sampler",
                     "consistency", "--steps", "1", "--seed", "0", "--quiet"])
        captured = capsys.readouterr()
        results[name] = (code, captured.err.strip())
        assert "Traceback" not in captured.err and "Traceback" not in captured.out, name
        if outcome == "ok":
            assert code == 0, (name, captured.err)
            audio, sr = sf.read(str(out), dtype="float32")
            info = sf.info(str(inputs / name))
            assert np.isfinite(audio).all() and audio.shape[1] == 2, name
            assert abs(audio.shape[0] / sr - info.frames / info.samplerate) < 1e-3, name
        else:
            errors = [line for line in captured.err.strip().splitlines() if not line.startswith("diffariff: warning:")]
            assert code == 2 and len(errors) == 1 and errors[0].startswith("diffariff: error: "), (name, captured.err)
            assert outcome.lower() in errors[0].lower(), (name, errors[0])
            assert not out.exists(), name
    assert {p.name: p.read_bytes() for p in inputs.iterdir() if p.is_file()} == before  # inputs untouched
    made = {p.name for p in outs.iterdir()}
    written = {f"{n}.stem.wav" for n, v in expected.items() if v == "ok"}
    assert written <= made and all(m in written or m[:-5] in written and m.endswith(".json") for m in made), made
    # (each stem and its tempo sidecar, nothing else: no temporary or partial file)
    assert sum(code == 0 for code, _ in results.values()) == sum(v == "ok" for v in expected.values())
