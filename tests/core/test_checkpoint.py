"""Checkpoints: safetensors with the config inside, strict kinds, clear errors, no pickle."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from diffariff.checkpoint import (
    config_from_dict,
    load_checkpoint,
    load_state_into,
    save_checkpoint,
)
from diffariff.errors import CheckpointError, ConfigError


@dataclass
class Inner:
    width: int = 4
    kernel: tuple[int, int] = (3, 3)


@dataclass
class Outer:
    name: str = "tiny"
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.5


def test_roundtrip_with_config_and_extra(tmp_path):
    net = torch.nn.Linear(3, 2)
    cfg = Outer(name="x", inner=Inner(width=7, kernel=(5, 1)))
    path = save_checkpoint(tmp_path / "m.safetensors", net.state_dict(), kind="toy", config=cfg,
                           extra={"step": 12, "latent_std": 0.06})
    ck = load_checkpoint(path, kind="toy")
    assert ck.kind == "toy" and ck.extra == {"step": 12, "latent_std": 0.06}
    back = config_from_dict(Outer, ck.config)
    assert back == cfg and isinstance(back.inner, Inner) and back.inner.kernel == (5, 1)
    other = torch.nn.Linear(3, 2)
    load_state_into(other, ck.tensors, path)
    for a, b in zip(net.parameters(), other.parameters()):
        torch.testing.assert_close(a, b)


def test_fp16_export_loads_as_float32(tmp_path):
    net = torch.nn.Linear(8, 8)
    path = save_checkpoint(tmp_path / "m.safetensors", net.state_dict(), kind="toy", config=Outer(),
                           dtype=torch.float16)
    ck = load_checkpoint(path)
    assert ck.tensors["weight"].dtype == torch.float32
    torch.testing.assert_close(ck.tensors["weight"], net.weight.detach(), atol=1e-3, rtol=1e-3)
    assert load_checkpoint(path, keep_dtype=True).tensors["weight"].dtype == torch.float16


def test_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_checkpoint(junk)
    path = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.zeros(2)}, kind="codec", config=Outer())
    with pytest.raises(CheckpointError, match="holds a 'codec' model, expected 'clap'"):
        load_checkpoint(path, kind="clap")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_state_into(torch.nn.Linear(3, 3), load_checkpoint(path).tensors, path)
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict(Outer, {"nmae": "typo"})
