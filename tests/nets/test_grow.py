"""Function-preserving depth growth of a DiT (diffariff.nets.grow): the grown network returns exactly
the trained one's output, its new blocks learn, and bad requests are refused."""

from __future__ import annotations

import pytest
import torch

from diffariff.errors import ConfigError
from diffariff.nets.dit import DiT, DiTConfig
from diffariff.nets.grow import grow_dit_state, growth_plan

TINY = {"width": 32, "depth": 3, "heads": 2, "cond_dim": 32, "noise_emb_dim": 32, "dpb_dim": 16, "clap_dim": 24,
        "latent_channels": 8, "context_channels": 8}


def trained_like(depth: int = 3) -> DiT:
    """A tiny DiT with every weight random, as after training (AdaLN-Zero's zeros would hide a wrong copy)."""
    torch.manual_seed(0)
    net = DiT(DiTConfig(**{**TINY, "depth": depth}))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net


def inputs(t: int = 11):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(2, 8, t, generator=g), torch.randn(2, generator=g), torch.randn(2, 8, t, generator=g),
            torch.randn(2, 24, generator=g))


def test_growth_plan_keeps_the_trained_blocks_in_order_and_spreads_the_copies():
    plan = growth_plan(6, 10)
    assert [src for src, _ in plan] == [0, 0, 1, 1, 2, 3, 3, 4, 4, 5]
    assert [new for _, new in plan].count(False) == 6  # each trained block once, as itself
    assert [src for src, new in plan if not new] == list(range(6))
    assert growth_plan(4, 4) == [(i, False) for i in range(4)]
    with pytest.raises(ConfigError):
        growth_plan(6, 5)


@pytest.mark.parametrize("new_depth", [3, 5, 7])
def test_a_grown_dit_computes_exactly_what_the_trained_one_does(new_depth):
    net = trained_like().eval()
    grown = DiT(DiTConfig(**{**TINY, "depth": new_depth})).eval()
    grown.load_state_dict(grow_dit_state(net.state_dict(), 3, new_depth))
    x, c, ctx, clap = inputs()
    drop = torch.tensor([False, True])
    with torch.no_grad():
        assert torch.equal(net(x, c, ctx, clap), grown(x, c, ctx, clap))
        assert torch.equal(net(x, c, ctx, clap, drop, drop), grown(x, c, ctx, clap, drop, drop))
    # the trained blocks are kept bit for bit; the copies differ only in their gates
    assert torch.equal(grown.blocks[new_depth - 1].mlp[0].weight, net.blocks[2].mlp[0].weight)


def test_new_blocks_are_gated_off_copies_that_start_learning():
    net = trained_like()
    grown = DiT(DiTConfig(**{**TINY, "depth": 5}))
    state = grow_dit_state(net.state_dict(), 3, 5)
    grown.load_state_dict(state)
    new = [i for i, (_, is_new) in enumerate(growth_plan(3, 5)) if is_new]
    assert new == [1, 3]
    w = 32
    for i in new:
        ada = grown.blocks[i].ada.proj
        src = net.blocks[growth_plan(3, 5)[i][0]].ada.proj
        for chunk in range(6):
            rows = slice(chunk * w, (chunk + 1) * w)
            if chunk in (2, 5):  # gates
                assert ada.weight[rows].abs().max() == 0 and ada.bias[rows].abs().max() == 0
            else:
                assert torch.equal(ada.weight[rows], src.weight[rows])
    assert state["blocks.1.attn.qkv.weight"].data_ptr() != net.state_dict()["blocks.0.attn.qkv.weight"].data_ptr()
    x, c, ctx, clap = inputs()
    grown(x, c, ctx, clap).square().mean().backward()
    for i in new:  # the gates get a gradient, so training opens them
        assert grown.blocks[i].ada.proj.weight.grad[2 * w: 3 * w].abs().max() > 0


def test_growth_refuses_a_state_dict_of_another_depth():
    with pytest.raises(ConfigError, match="blocks 0..3"):
        grow_dit_state(trained_like(3).state_dict(), 4, 6)
