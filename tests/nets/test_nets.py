"""Networks: parameter counts of the paper configs, shapes at odd/long lengths, condition dropout,
AdaLN-Zero start, checkpoint round trip, factory errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffariff.checkpoint import load_checkpoint, load_state_into, save_checkpoint
from diffariff.errors import ConfigError, InputError
from diffariff.nets import DiT, DiTConfig, build_net
from diffariff.nets.layers import DynamicPositionBias, SinusoidalEmbedding
from diffariff.nets.unet1d import UNet1d, UNetConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {
    "dit": {"width": 64, "depth": 2, "heads": 4, "cond_dim": 64, "clap_dim": 32},
    "dit_rope": {"width": 64, "depth": 2, "heads": 4, "cond_dim": 64, "clap_dim": 32, "pos": "rope"},
    "unet1d": {"base_channels": 32, "channel_mults": [1, 2, 2], "attn_levels": [1, 2], "heads": 2,
               "groups": 8, "cond_dim": 64, "clap_dim": 32},
}


def tiny(name: str, seed: int = 0) -> torch.nn.Module:
    """A tiny net with all weights randomised (zero-initialised output layers would hide the conditions)."""
    torch.manual_seed(seed)
    net = build_net("unet1d" if name == "unet1d" else "dit", TINY[name])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def _inputs(b: int, t: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 64, t, generator=g), torch.randn(b, generator=g) * 0.5,
            torch.randn(b, 64, t, generator=g), torch.nn.functional.normalize(torch.randn(b, 32, generator=g), dim=1))


def _count(kind: str, file: str) -> float:
    with torch.device("meta"):
        net = build_net(kind, json.loads((CONFIGS / file).read_text()))
    return sum(p.numel() for p in net.parameters()) / 1e6


def test_paper_parameter_counts():
    assert _count("dit", "dit_paper.json") == pytest.approx(280, rel=0.15)
    assert _count("unet1d", "unet_paper.json") == pytest.approx(430, rel=0.20)
    assert 5 <= _count("dit", "dit_small.json") <= 10
    assert 5 <= _count("unet1d", "unet_small.json") <= 12


def _paper_forward(kind: str, file: str) -> None:
    torch.manual_seed(0)
    net = build_net(kind, json.loads((CONFIGS / file).read_text())).eval()
    x, c, ctx, _ = _inputs(1, 7)
    clap = torch.nn.functional.normalize(torch.randn(1, 512), dim=1)
    with torch.no_grad():
        y = net(x, c, context=ctx, clap=clap)
    assert y.shape == (1, 64, 7) and bool(torch.isfinite(y).all())


def test_dit_paper_forward():
    _paper_forward("dit", "dit_paper.json")


@pytest.mark.slow
def test_unet_paper_forward():
    _paper_forward("unet1d", "unet_paper.json")


@pytest.mark.parametrize("name", ["dit", "dit_rope", "unet1d"])
@pytest.mark.parametrize("t", [1, 7, 117])
def test_shapes_any_length(name, t):
    net = tiny(name)
    x, c, ctx, clap = _inputs(2, t)
    with torch.no_grad():
        y = net(x, c, context=ctx, clap=clap)
        y0 = net(x, c)
    assert y.shape == (2, 64, t) and y0.shape == (2, 64, t)
    assert bool(torch.isfinite(y).all())
    assert not torch.allclose(y, y0)  # the conditions matter


@pytest.mark.parametrize("name", ["dit", "dit_rope"])
def test_dit_runs_far_beyond_training_length(name):
    """~100 s of latent frames (10x a training window) in one pass."""
    net = tiny(name)
    x, c, ctx, clap = _inputs(1, 1171)
    with torch.no_grad():
        y = net(x, c, context=ctx, clap=clap)
    assert y.shape == (1, 64, 1171) and bool(torch.isfinite(y).all())


@pytest.mark.parametrize("name", ["dit", "unet1d"])
def test_condition_dropout_matches_absent_conditions(name):
    net = tiny(name)
    x, c, ctx, clap = _inputs(3, 23)
    with torch.no_grad():
        full = net(x, c, context=ctx, clap=clap)
        no_ctx = net(x, c, context=None, clap=clap)
        no_clap = net(x, c, context=ctx, clap=None)
        mixed = net(x, c, context=ctx, clap=clap, drop_context=torch.tensor([True, False, True]),
                    drop_clap=torch.tensor([False, False, True]))
        none = net(x, c)
    assert torch.allclose(mixed[0], no_ctx[0], atol=1e-5)
    assert torch.allclose(mixed[1], full[1], atol=1e-5)
    assert torch.allclose(mixed[2], none[2], atol=1e-5)
    assert not torch.allclose(no_ctx, full, atol=1e-3) and not torch.allclose(no_clap, full, atol=1e-3)


def test_dit_starts_at_zero_output_and_is_seeded():
    torch.manual_seed(3)
    a = DiT(DiTConfig(**TINY["dit"]))
    torch.manual_seed(3)
    b = DiT(DiTConfig(**TINY["dit"]))
    x, c, ctx, clap = _inputs(2, 11)
    with torch.no_grad():
        assert torch.equal(a(x, c, context=ctx, clap=clap), torch.zeros(2, 64, 11))  # AdaLN-Zero
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


def test_batch_independence():
    """Each sample's output depends only on its own inputs (no cross-batch leakage)."""
    net = tiny("dit")
    x, c, ctx, clap = _inputs(4, 19)
    with torch.no_grad():
        whole = net(x, c, context=ctx, clap=clap)
        single = net(x[2:3], c[2:3], context=ctx[2:3], clap=clap[2:3])
    assert torch.allclose(whole[2:3], single, atol=1e-5)


@pytest.mark.parametrize("name", ["dit", "unet1d"])
def test_checkpoint_round_trip(tmp_path, name):
    net = tiny(name)
    kind = "unet1d" if name == "unet1d" else "dit"
    path = save_checkpoint(tmp_path / "net.safetensors", net.state_dict(), kind=kind, config=net.config)
    ck = load_checkpoint(path, kind=kind)
    net2 = build_net(ck.kind, ck.config).eval()
    load_state_into(net2, ck.tensors, path)
    x, c, ctx, clap = _inputs(2, 13)
    with torch.no_grad():
        assert torch.equal(net(x, c, context=ctx, clap=clap), net2(x, c, context=ctx, clap=clap))


def test_factory_and_input_errors():
    with pytest.raises(ConfigError):
        build_net("transformer", {})
    with pytest.raises(ConfigError):
        build_net("dit", {"width": 64, "depht": 2})
    with pytest.raises(ConfigError):
        DiTConfig(width=65, heads=4)
    with pytest.raises(ConfigError):
        UNetConfig(attn_levels=(7,))
    net = tiny("dit")
    with pytest.raises(InputError):
        net(torch.randn(2, 32, 10), torch.zeros(2))
    with pytest.raises(InputError):
        net(torch.randn(2, 64, 10), torch.zeros(2), context=torch.randn(2, 64, 9))
    with pytest.raises(InputError):
        net(torch.randn(2, 64, 10), torch.zeros(2), clap=torch.randn(2, 512))
    assert isinstance(tiny("unet1d"), UNet1d)


def test_layers():
    emb = SinusoidalEmbedding(512)(torch.tensor([-1.0, 0.0, 1.0]))
    assert emb.shape == (3, 512)
    assert torch.allclose(emb.norm(dim=1), torch.full((3,), 16.0))  # 256 (cos, sin) pairs
    dpb = DynamicPositionBias(16, 3)
    bias = dpb(9, torch.device("cpu"), torch.float32)
    assert bias.shape == (3, 9, 9)
    # a Toeplitz bias: it depends only on i - j
    assert torch.allclose(bias[:, 1:, 1:], bias[:, :-1, :-1])
    assert torch.allclose(dpb(20, torch.device("cpu"), torch.float32)[:, :9, :9], bias)
