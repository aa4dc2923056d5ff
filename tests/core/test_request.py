"""The generation request: one typed set of controls, one name from the command line to the sampler."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from diffariff.diffusion.model import LatentDiffusion
from diffariff.errors import InputError
from diffariff.pipeline import Accompanist
from diffariff.request import GenerationRequest
from diffariff.testing import make_tiny_bundle


def test_options_replace_fields_and_unknown_names_are_refused():
    base = GenerationRequest(text="warm bass", cfg_context=2.0, seed=3)
    louder = GenerationRequest.build(base, cfg_clap=2.5)
    assert (louder.text, louder.cfg_context, louder.cfg_clap, louder.seed) == ("warm bass", 2.0, 2.5, 3)
    assert base.cfg_clap is None  # frozen: the base request is unchanged (None: the model's own strength)
    assert GenerationRequest.build(None) == GenerationRequest()
    with pytest.raises(InputError, match="unknown generation option.*w_ctx.*known: text"):
        GenerationRequest.build(base, w_ctx=2.0)
    with pytest.raises(InputError, match="must be a GenerationRequest"):
        GenerationRequest.build({"text": "bass"})


@pytest.mark.parametrize("fields, message", [
    ({"text": "  "}, "text prompt is empty"), ({"long_mode": "fast"}, "long_mode"), ({"n": 0}, "candidates"),
    ({"steps": 0}, "steps"), ({"loop": 5}, "loop"), ({"style_strength": 1.5}, "style strength"),
    ({"window_seconds": 0.0}, "window_seconds"), ({"guidance_interval": (2.0, 1.0)}, "guidance interval"),
    ({"cfg_context": -1.0}, "cfg_context"), ({"cfg_clap": 50.0}, "cfg_clap"),
])
def test_bad_controls_fail_when_the_request_is_built(fields, message):
    with pytest.raises(InputError, match=message):
        GenerationRequest(**fields)


def test_the_sampling_controls_are_keywords_of_the_latent_models_sampler():
    """Every name the request hands the sampler is a parameter of ``LatentDiffusion.sample``."""
    params = inspect.signature(LatentDiffusion.sample).parameters
    assert set(GenerationRequest().sampling()) <= set(params)


def test_every_generate_option_of_the_cli_lands_in_the_request_under_its_own_name(tmp_path):
    """``diffariff generate``'s options become request fields of the same name (no renaming layer)."""
    from diffariff.cli import build_parser
    from diffariff.commands.generate import _request

    args = build_parser("generate").parse_args([
        "generate", "ctx.wav", "-o", str(tmp_path / "o.wav"), "--text", "bass", "--cfg-context", "2.5",
        "--cfg-clap", "0.5", "--steps", "7", "--seed", "11", "-n", "2", "--style-strength", "0.3",
        "--guidance-interval", "0.1", "5", "--no-prior", "--quiet", "--long-mode", "windowed"])
    req = _request(args)
    assert (req.text, req.cfg_context, req.cfg_clap, req.steps, req.seed, req.n) == ("bass", 2.5, 0.5, 7, 11, 2)
    assert (req.style_strength, req.guidance_interval, req.use_prior, req.progress, req.long_mode) == (
        0.3, (0.1, 5.0), False, False, "windowed")
    shared = {f.name for f in dataclasses.fields(GenerationRequest)} & set(vars(args))
    assert {"cfg_context", "cfg_clap", "sampler", "steps", "seed", "loop", "loop_strength", "width"} <= shared


def test_a_request_and_the_same_keywords_generate_the_same_stem(tmp_path, render_notes):
    acc = Accompanist.from_pretrained(make_tiny_bundle(tmp_path / "b", seed=0, train_frames=24).root)
    context = render_notes(0, [60, 64, 67, 72], beat_seconds=0.2, seconds=1.0)
    req = GenerationRequest(text="piano", steps=2, sampler="euler", seed=4, decode_mode="deterministic")
    from_request = acc.generate(context, req)
    from_keywords = acc.generate(context, text="piano", steps=2, sampler="euler", seed=4, decode_mode="deterministic")
    np.testing.assert_array_equal(from_request, from_keywords)
    stronger = acc.generate(context, req, cfg_context=3.0)  # a keyword overrides the request's field
    assert stronger.shape == from_request.shape and not np.allclose(stronger, from_request)
    # no strength given: the latent model's own (its config's w_ctx / w_clap)
    model = acc.models["edm"].config
    own = acc.generate(context, req, cfg_context=model.w_ctx, cfg_clap=model.w_clap)
    np.testing.assert_array_equal(own, from_request)
    with pytest.raises(InputError, match="unknown generation option"):
        acc.generate(context, req, loop_n=2)
