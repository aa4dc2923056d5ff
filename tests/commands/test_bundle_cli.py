"""``diffariff bundle create|info``: assemble a bundle from real (tiny) checkpoints, validate identities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffariff.audio import save_audio
from diffariff.bundle import open_bundle
from diffariff.cli import main as cli_main
from diffariff.testing import make_tiny_bundle


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    base = tmp_path_factory.mktemp("bcli")
    a = make_tiny_bundle(base / "a", seed=0)
    b = make_tiny_bundle(base / "b", seed=1, modes=("edm",))
    ctx = save_audio(base / "ctx.flac", np.random.default_rng(0).uniform(-0.3, 0.3, (2, 48_000)).astype(np.float32),
                     48_000)
    return a, b, ctx


def test_create_then_info_round_trip(parts, tmp_path, capsys):
    a, _, ctx = parts
    out = tmp_path / "bundle"
    args = ["bundle", "create", str(out), "--codec", str(a.codec), "--clap", str(a.clap),
            "--edm", str(a.diffusion["edm"]), "--consistency", str(a.diffusion["consistency"]),
            "--example", f"context={ctx}", "--notes", "smoke"]
    assert cli_main(args) == 0
    assert "modes edm, consistency" in capsys.readouterr().out
    bundle = open_bundle(out)
    assert bundle.modes == ("edm", "consistency") and bundle.example["context"].suffix == ".flac"
    assert cli_main(["bundle", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["notes"] == "smoke" and info["parts"]["diffusion.edm"]["kind"] == "latent-diffusion"
    assert info["parts"]["codec"]["bytes"] == a.codec.stat().st_size
    assert cli_main(args) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite"]) == 0


def test_create_refuses_a_model_trained_on_another_codec(parts, tmp_path, capsys):
    a, b, _ = parts
    out = tmp_path / "mixed"
    code = cli_main(["bundle", "create", str(out), "--codec", str(a.codec), "--clap", str(a.clap),
                     "--edm", str(b.diffusion["edm"])])
    assert code == 2 and "was trained with codec" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".mixed*"))
    assert cli_main(["bundle", "create", str(out), "--codec", str(a.codec), "--clap", str(a.clap)]) == 2
    assert "--edm" in capsys.readouterr().err
    assert cli_main(["bundle", "create", str(out), "--codec", str(a.codec), "--clap", str(a.clap),
                     "--edm", str(a.diffusion["edm"]), "--example", "nofile"]) == 2
    assert "NAME=FILE" in capsys.readouterr().err
