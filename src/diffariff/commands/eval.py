"""``diffariff eval generation | pairs | controls | codec | recorded | denoising``: the evaluation commands.

* ``generation``: Table 1 of Improved Diff-A-Riff on held-out pairs (see :mod:`diffariff.eval.protocol`), for the
  candidate stems of ``--candidates`` (files) and/or ``--bundle`` (generated), with the bounds;
  writes ``results.json``, ``table.md``, ``pairs.json``, ``metrics.png``, ``pca.png`` and an
  embedding cache (``--cache``, default ``OUT/cache``) that makes re-runs cheap.
* ``pairs``: only draws the pairs and writes ``pairs.json`` (and, with ``--audio``, each pair's
  ``context/<i>.wav`` and ``reference/<i>.wav``), so a generator can make matching candidates.
* ``denoising``: a latent diffusion model's denoising error at fixed noise levels on latent caches
  (see :mod:`diffariff.eval.denoising`): a training cache vs a held-out one measures over-fitting.
* ``codec``: reconstruction of held-out stems and mixes by the codec vs Opus vs silence
  (see :mod:`diffariff.eval.codec_eval`); writes ``results.json`` and ``table.md``.
* ``recorded``: rhythm and key fit of stems generated for spans of recorded mixtures, to their own context
  and to another span's (see :mod:`diffariff.eval.recorded_fit`); writes ``results.json`` and ``table.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..errors import InputError
from .options import guidance_interval


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate generated stems (Table 1) or the codec")
    sub = parser.add_subparsers(dest="eval_command", metavar="WHAT")
    parser.set_defaults(func=lambda args: _missing_sub(parser))

    g = sub.add_parser("generation", help="KD, FAD, coverage, density, APA and CLAP scores vs real data")
    g.add_argument("--clap", required=True, help="CLAP checkpoint (.safetensors) used as the embedding")
    _data_args(g)
    g.add_argument("--out", required=True, help="report folder")
    g.add_argument("--candidates", help="folder of <index>.wav or <setting>/<index>.wav candidate stems")
    g.add_argument("--bundle", help="model bundle: generate candidates for each conditioning setting")
    g.add_argument("--codec", help="a codec alone (no bundle): score the real stems through it, the 'real via "
                                   "codec' row (the ceiling of any latent model on its latents)")
    g.add_argument("--settings", nargs="+", help="with --bundle: only these settings (default: all)")
    g.add_argument("--sampler", help="with --bundle: heun | dpmpp_2m | euler (EDM) or consistency (default: the "
                                     "bundle's preferred model)")
    g.add_argument("--steps", type=int, help="with --bundle: sampling steps (default: the model's own; 25 for the default bundle's EDM, 5 consistency)")
    g.add_argument("--cfg-context", type=float, default=None,
                   help="with --bundle: context guidance (default: the model's own)")
    g.add_argument("--cfg-clap", type=float, default=None, help="with --bundle: CLAP guidance (default: the model's own)")
    g.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LO", "HI"),
                   help="with --bundle: guide only at noise levels LO < sigma <= HI (default: all)")
    g.add_argument("--no-key-lock", dest="key_lock", action="store_false", default=None,
                   help="with --bundle: generate without the key lock (default: on when the codec can transpose)")
    g.add_argument("--harmony", type=float, default=None,
                   help="with --bundle: harmony guidance strength (default: the pipeline's, 0.2 with a synth codec; 0: off)")
    g.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="with --bundle: the networks' arithmetic (default auto: bf16 where native)")
    g.add_argument("--prior-guidance", type=float,
                   help="with --bundle: context-prior guidance of the ctx_prior row (default: the prior's own; "
                   "1 for a diffusion prior)")
    g.add_argument("--reference-n", type=int, help="pairs in the real reference draw (default: --n)")
    g.add_argument("--batches", type=int, default=5, help="batches for the mean and CI (default 5)")
    g.add_argument("--bounds", nargs="*", default=["random", "noise", "silence"],
                   help="bound rows besides 'real' (default: random noise silence)")
    g.add_argument("--cache", help="embedding cache folder (default: OUT/cache)")
    g.add_argument("--no-progress", action="store_true", help="never show progress bars")
    g.set_defaults(func=run_generation)

    p = sub.add_parser("pairs", help="write the held-out pairs' manifest (pairs.json) for a generator")
    _data_args(p)
    p.add_argument("--out", required=True, help="folder for pairs.json (and the audio with --audio)")
    p.add_argument("--audio", action="store_true", help="also write context/<i>.wav and reference/<i>.wav")
    p.set_defaults(func=run_pairs)

    k = sub.add_parser("controls", help="style grounding, length generalisation and window seams of a bundle")
    k.add_argument("--bundle", required=True, help="model bundle folder or 'default'")
    k.add_argument("--clap", required=True, help="CLAP checkpoint (.safetensors) used as the embedding")
    k.add_argument("--data", required=True, help="multitrack dataset folder")
    k.add_argument("--split", default="test", help="held-out split ('all': every song; default test)")
    k.add_argument("--n", type=int, default=12, help="pairs for style grounding (default 12)")
    k.add_argument("--long-n", type=int, default=4, help="long contexts for length generalisation (default 4)")
    k.add_argument("--long-seconds", type=float, default=30.0, help="long context length (default 30 s)")
    k.add_argument("--window-seconds", type=float, default=10.0, help="style-grounding pair length (default 10 s)")
    k.add_argument("--reference-seconds", type=float, default=5.0, help="style reference clip (default 5 s)")
    k.add_argument("--segment-seconds", type=float, default=5.0, help="segment length (default 5 s)")
    k.add_argument("--slice-seconds", type=float, default=10.0,
                   help="APA per slice of this length; --long-seconds must be a multiple of it (default 10 s)")
    k.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0], help="style strengths (default 0.5 1)")
    k.add_argument("--long-modes", nargs="+", default=["direct", "windowed", "sliced"],
                   help="long-context modes: direct, sliced, windowed (the pipeline's default windows) or "
                   "windowed:S (windows of S seconds); default: direct windowed sliced")
    k.add_argument("--no-style", action="store_true", help="skip the style-grounding measurement")
    k.add_argument("--sampler", help="heun | dpmpp_2m | euler (EDM) or consistency (default: the bundle's)")
    k.add_argument("--steps", type=int, help="sampling steps (default: the model's own; 25 for the default bundle's EDM, 5 consistency)")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--out", required=True, help="report folder (results.json, table.md)")
    k.add_argument("--no-progress", action="store_true", help="never show progress bars")
    k.set_defaults(func=run_controls)

    c = sub.add_parser("codec", help="codec reconstruction vs Opus and silence on held-out audio")
    c.add_argument("--codec", required=True, help="codec checkpoint (.safetensors)")
    c.add_argument("--data", help="multitrack dataset folder (stem and mix clips)")
    c.add_argument("--split", default="test", help="held-out split ('all': every song; default test)")
    c.add_argument("--real", help="folder of recorded mixtures (diffariff.data.mixtures): 'real' clips too")
    c.add_argument("--real-split", default="test_ood",
                   help="split of --real to draw from (default test_ood: sources never trained on)")
    c.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10 s)")
    c.add_argument("--n", type=int, default=20, help="windows (each gives a stem and a mix clip; default 20)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True, help="report folder")
    c.add_argument("--opus", type=float, nargs="*", default=[12.0, 24.0], help="Opus bitrates in kbps")
    c.add_argument("--steps", type=int, nargs="+", default=[1, 2], help="consistency decoding steps")
    c.add_argument("--mode", nargs="+", default=["consistency", "deterministic"], help="decode modes")
    c.add_argument("--seam-seconds", type=float, default=0.0,
                   help="also measure chunk seams on this many seconds of a held-out mixture (default 0: off)")
    c.add_argument("--seam-chunk-seconds", type=float, default=5.0, help="chunk length for --seam-seconds (default 5)")
    c.add_argument("--latent-probe", type=int, default=0, metavar="N",
                   help="also fit a linear probe from the latents to per-frame pitch-class profiles on N windows "
                   "of the training split and score it on the held-out windows (default 0: off)")
    c.add_argument("--stem-draw", choices=("first", "cycle"), default="first",
                   help="stem of each held-out window: each song's first target ('first', the default: mostly drums) "
                   "or song j's j-th target ('cycle': all roles)")
    c.add_argument("--no-progress", action="store_true", help="never show progress bars")
    c.set_defaults(func=run_codec)

    r = sub.add_parser("recorded", help="rhythm and key fit of stems generated for recorded mixtures (no stems "
                                        "needed): own context vs another span's")
    r.add_argument("--bundle", required=True, help="model bundle folder ('default': the packaged one)")
    r.add_argument("--real", required=True, help="folder of recorded mixtures (diffariff.data.mixtures)")
    r.add_argument("--real-split", default="test_ood",
                   help="split of --real to draw from (default test_ood: sources never trained on)")
    r.add_argument("--n", type=int, default=12, help="spans (default 12)")
    r.add_argument("--seconds", type=float, default=10.0, help="span length (default 10 s)")
    r.add_argument("--prompts", nargs="+", default=["bass", "piano"], help="one stem per prompt and span")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--sampler", choices=("heun", "dpmpp_2m", "euler", "consistency"),
                   help="sampler (default: the bundle's preferred model)")
    r.add_argument("--harmony", type=float, default=None, help="harmony guidance strength (default: the pipeline's)")
    r.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="the networks' arithmetic (default auto: bf16 where native)")
    r.add_argument("--no-key-lock", dest="key_lock", action="store_false", default=None,
                   help="generate without the key lock")
    r.add_argument("--out", required=True, help="report folder (results.json, table.md)")
    r.set_defaults(func=run_recorded)

    d = sub.add_parser("denoising", help="denoising error of a latent diffusion model on latent caches "
                                         "(train vs held-out: over-fitting)")
    d.add_argument("--model", required=True, help="latent-diffusion checkpoint (.safetensors)")
    d.add_argument("--cache", required=True, nargs="+", help="latent cache folder(s) (`diffariff latents build`)")
    d.add_argument("--out", required=True, help="report folder (results.json, table.md)")
    d.add_argument("--n", type=int, help="rows per cache (default: all)")
    d.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.2, 0.5, 1.0, 2.0, 5.0],
                   help="noise levels in normalised latent units (default 0.05 0.2 0.5 1 2 5)")
    d.add_argument("--frames", type=int, help="window in latent frames (default: the model's training window)")
    d.add_argument("--batch-size", type=int, default=64, help="sequences per forward pass (default 64)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=run_denoising)

    q = sub.add_parser("prior", help="context priors on a prior run's embedded held-out pairs: closeness to the "
                                     "true target, role accuracy, and how much the context embedding says about the role")
    q.add_argument("--prior", required=True, nargs="+", help="context prior checkpoint(s) (prior.safetensors)")
    q.add_argument("--pairs", required=True, help="embedded pairs folder of a `train prior` run (RUN/pairs)")
    q.add_argument("--out", required=True, help="report folder (results.json, table.md)")
    q.add_argument("--guidance", type=float, nargs="+", default=[1.0], help="prior guidance strengths (default 1)")
    q.add_argument("--samples", type=int, default=4, help="samples per held-out pair (default 4)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=run_prior)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="multitrack dataset folder (e.g. the built-in corpus)")
    p.add_argument("--split", default="test", help="held-out split ('all': every song; default test)")
    p.add_argument("--n", type=int, default=100, help="held-out pairs (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window-seconds", type=float, default=10.0, help="pair length in seconds (default 10)")
    p.add_argument("--stem-draw", choices=("first", "cycle"), default="first",
                   help="target of each pair: each song's stems in turn from its first ('first', the default) or "
                   "pair j from song j's j-th stem ('cycle': the "
                   "targets span the roles even when there are fewer than 2 pairs per song)")


def _missing_sub(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _config(args):
    from ..eval.protocol import GenerationEvalConfig  # noqa: PLC0415  (keep `diffariff --help` fast)

    return GenerationEvalConfig(
        n=args.n, reference_n=getattr(args, "reference_n", None), seed=args.seed, split=args.split,
        window_seconds=args.window_seconds, batches=getattr(args, "batches", 5), stem_draw=args.stem_draw,
    )


def _arguments(args) -> dict:
    """The parsed arguments as JSON-able values (the handler left out)."""
    return {k: v for k, v in vars(args).items() if k != "func" and (v is None or isinstance(v, (str, int, float,
                                                                                               bool, list)))}


def _progress(args):
    return False if getattr(args, "no_progress", False) else None


def _check_data(data) -> None:
    """A one-line refusal for a ``--data`` that is not a folder (before any model loads)."""
    if data is not None and not Path(data).is_dir():
        raise InputError(f"--data {data}: no such folder")


def run_generation(args) -> int:
    from ..checkpoint import file_sha256  # noqa: PLC0415
    from ..clap.builtin import BuiltinClap  # noqa: PLC0415
    from ..eval.cache import CachedEmbedder, EmbeddingCache  # noqa: PLC0415
    from ..eval.candidates import bundle_generators, codec_generators  # noqa: PLC0415
    from ..eval.protocol import evaluate_generation  # noqa: PLC0415
    from ..eval.report import write_generation_report  # noqa: PLC0415

    config = _config(args)  # bad numbers fail before anything is loaded
    _check_data(args.data)
    if args.candidates is not None and not Path(args.candidates).is_dir():
        raise InputError(f"--candidates {args.candidates}: no such folder")
    if args.bundle is not None and args.codec is not None:
        raise InputError("give --bundle or --codec, not both (a bundle has its own codec)")
    if args.codec is not None and not Path(args.codec).is_file():
        raise InputError(f"--codec {args.codec}: no such file")
    if args.candidates is None and args.bundle is None and args.codec is None:
        print("diffariff: note: no --candidates, --bundle or --codec: only the real row and the bounds are scored",
              file=sys.stderr)
    clap_path = Path(args.clap)
    if not clap_path.is_file():
        raise InputError(f"--clap {clap_path}: no such file")
    clap_hash = file_sha256(clap_path)
    clap = BuiltinClap.load(clap_path)
    out = Path(args.out)
    cache = EmbeddingCache(Path(args.cache) if args.cache else out / "cache", clap_hash)
    embedder = CachedEmbedder(clap, cache)
    generators = (bundle_generators(args.bundle, args.settings, sampler=args.sampler, steps=args.steps,
                                    cfg_context=args.cfg_context, cfg_clap=args.cfg_clap,
                                    prior_guidance=args.prior_guidance,
                                    guidance_interval=guidance_interval(args.guidance_interval),
                                    key_lock=args.key_lock, harmony=args.harmony, precision=args.precision)
                  if args.bundle else codec_generators(args.codec, clap) if args.codec else None)
    evaluation = evaluate_generation(embedder, args.data, config, candidates_dir=args.candidates,
                                     generators=generators, bounds=args.bounds, progress=_progress(args))
    write_generation_report(evaluation, out, arguments=_arguments(args), clap_path=clap_path, clap_hash=clap_hash,
                            data_root=args.data, embed_calls=embedder.calls)
    print((out / "table.md").read_text())
    print(f"report written to {out}", file=sys.stderr)
    return 0


def run_pairs(args) -> int:
    from ..audio import save_audio  # noqa: PLC0415
    from ..data.sources import open_dataset  # noqa: PLC0415
    from ..eval.protocol import draw_pairs, pair_manifest  # noqa: PLC0415
    from ..eval.settings import SAMPLE_RATE  # noqa: PLC0415
    from ..fsutil import write_json_atomic  # noqa: PLC0415

    config = _config(args)
    _check_data(args.data)
    items = draw_pairs(open_dataset(args.data, split=config.split), config, config.n, config.seed)
    out = Path(args.out)
    if args.audio:
        for it in items:
            save_audio(out / "context" / f"{it['index']}.wav", it["context"], SAMPLE_RATE)
            save_audio(out / "reference" / f"{it['index']}.wav", it["reference"], SAMPLE_RATE)
    write_json_atomic(out / "pairs.json", pair_manifest(items, config, args.data))
    print(f"{len(items)} pairs written to {out / 'pairs.json'}", file=sys.stderr)
    return 0


def _write_report(out: Path, results: dict, table: str) -> int:
    """``out/results.json`` and ``out/table.md`` (atomic); the table on stdout."""
    from ..fsutil import write_json_atomic, write_text_atomic  # noqa: PLC0415

    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "table.md", table)
    print(table)
    print(f"report written to {out}", file=sys.stderr)
    return 0


def run_controls(args) -> int:
    from ..clap.builtin import BuiltinClap  # noqa: PLC0415
    from ..eval.controls import ControlsConfig, controls_table, evaluate_controls  # noqa: PLC0415
    from ..eval.report import command_line, versions  # noqa: PLC0415

    config = ControlsConfig(n=args.n, long_n=args.long_n, seed=args.seed, split=args.split,
                            window_seconds=args.window_seconds, long_seconds=args.long_seconds,
                            segment_seconds=args.segment_seconds, slice_seconds=args.slice_seconds,
                            reference_seconds=args.reference_seconds, strengths=tuple(args.strengths),
                            sampler=args.sampler, steps=args.steps, long_modes=tuple(args.long_modes),
                            style=not args.no_style)
    _check_data(args.data)
    if not Path(args.clap).is_file():
        raise InputError(f"--clap {args.clap}: no such file")
    results = evaluate_controls(args.bundle, BuiltinClap.load(args.clap), args.data, config, progress=_progress(args))
    results = {"format": "diffariff-eval-controls", "version": 1, "command": command_line(), "versions": versions(),
               "arguments": _arguments(args), **results}
    return _write_report(Path(args.out), results, controls_table(results))


def run_codec(args) -> int:
    from ..checkpoint import file_sha256  # noqa: PLC0415
    from ..codec import load_codec  # noqa: PLC0415
    from ..eval.codec_eval import CodecEvalConfig, run_codec_eval  # noqa: PLC0415
    from ..eval.report import codec_table, command_line, versions  # noqa: PLC0415

    config = CodecEvalConfig(n=args.n, seconds=args.seconds, seed=args.seed, split=args.split,
                             modes=tuple(args.mode), steps=tuple(args.steps), opus_kbps=tuple(args.opus),
                             seam_seconds=args.seam_seconds, seam_chunk_seconds=args.seam_chunk_seconds,
                             latent_probe=args.latent_probe, stem_draw=args.stem_draw)
    codec_path = Path(args.codec)
    if not codec_path.is_file():
        raise InputError(f"--codec {codec_path}: no such file")
    if args.data is None and args.real is None:
        raise InputError("give --data (multitrack songs) and/or --real (a folder of recorded mixtures)")
    _check_data(args.data)
    results = run_codec_eval(lambda: load_codec(codec_path), args.data, config, progress=_progress(args),
                             real_root=args.real, real_split=args.real_split)
    results = {"format": "diffariff-eval-codec", "version": 1, "command": command_line(), "versions": versions(),
               "data": str(args.data), "codec": {"path": str(codec_path), "sha256": file_sha256(codec_path)},
               "arguments": _arguments(args), "seed": args.seed, **results}
    return _write_report(Path(args.out), results, codec_table(results))


def run_recorded(args) -> int:
    from ..eval.recorded_fit import RecordedFitConfig, recorded_fit_table, recorded_spans, score_fits  # noqa: PLC0415
    from ..eval.report import command_line, versions  # noqa: PLC0415

    try:
        config = RecordedFitConfig(n=args.n, seconds=args.seconds, seed=args.seed, prompts=tuple(args.prompts))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if not Path(args.real).is_dir():
        raise InputError(f"--real {args.real}: no such folder")
    from ..bundle import open_bundle  # noqa: PLC0415

    open_bundle(args.bundle)  # a bad bundle is refused before the spans are read
    spans = recorded_spans(args.real, args.real_split, config)
    from ..pipeline import Accompanist  # noqa: PLC0415

    acc = Accompanist.from_pretrained(args.bundle)

    def generate(context, prompt: str, seed: int):
        return acc.generate(context, text=prompt, seed=seed, sampler=args.sampler, harmony=args.harmony,
                            key_lock=args.key_lock, precision=args.precision)[0]

    results = score_fits(generate, spans, config)
    results = {"format": "diffariff-eval-recorded", "version": 1, "command": command_line(), "versions": versions(),
               "arguments": _arguments(args), "real": str(args.real), "split": args.real_split,
               "config": dataclasses.asdict(config), **results}
    return _write_report(Path(args.out), results, recorded_fit_table(results))


def run_denoising(args) -> int:
    import torch  # noqa: PLC0415

    from ..data.latents import LatentCacheDataset, check_model_fits_cache  # noqa: PLC0415
    from ..diffusion.model import LatentDiffusion  # noqa: PLC0415
    from ..eval.denoising import DenoisingEvalConfig, denoising_losses, denoising_table  # noqa: PLC0415
    from ..eval.report import command_line, versions  # noqa: PLC0415
    from ..torchutil import setup_cpu  # noqa: PLC0415

    config = DenoisingEvalConfig(sigmas=tuple(args.sigmas), n=args.n, frames=args.frames,
                                 batch_size=args.batch_size, seed=args.seed)
    if not Path(args.model).is_file():
        raise InputError(f"--model {args.model}: no such file")
    setup_cpu()
    model = LatentDiffusion.load(args.model)
    caches = {}
    for root in args.cache:
        ds = LatentCacheDataset(root, limit=args.n)
        check_model_fits_cache(model.config, ds.manifest, f"--model (for --cache {root})")
        with torch.inference_mode():
            caches[str(root)] = denoising_losses(model, ds.tensors, config)
    results = {"format": "diffariff-eval-denoising", "version": 1, "command": command_line(),
               "versions": versions(), "arguments": _arguments(args), "model": str(args.model), "seed": args.seed,
               "caches": caches}
    return _write_report(Path(args.out), results, denoising_table(results))


def run_prior(args) -> int:
    from ..eval.report import command_line, versions  # noqa: PLC0415
    from ..priors.context_prior import (  # noqa: PLC0415
        context_role_probe,
        evaluate_prior,
        require_context_prior,
        role_centroids,
    )
    from ..priors.load import load_context_prior  # noqa: PLC0415
    from ..torchutil import setup_cpu  # noqa: PLC0415
    from ..train.prior import read_pairs_folder  # noqa: PLC0415

    if args.samples < 1 or any(g < 0 for g in args.guidance):
        raise InputError("need --samples >= 1 and --guidance >= 0")
    setup_cpu()
    train, held_out, clap_sha = read_pairs_folder(args.pairs)
    centroids = role_centroids(train)
    rows = []
    for path in args.prior:
        if not Path(path).is_file():
            raise InputError(f"--prior {path}: no such file")
        prior = load_context_prior(path).eval()
        require_context_prior(prior, f"--prior {path}")
        if prior.config.clap_sha256 and prior.config.clap_sha256 != clap_sha:
            raise InputError(f"--prior {path}: trained on another CLAP model than the pairs in {args.pairs}")
        for g in args.guidance:
            result = evaluate_prior(prior, held_out, samples=args.samples, seed=args.seed, centroids=centroids,
                                    guidance=g)
            rows.append({"prior": str(path), "guidance": g, **result})
    probe = context_role_probe(train, held_out, seed=args.seed)
    results = {"format": "diffariff-eval-prior", "version": 1, "command": command_line(), "versions": versions(),
               "arguments": _arguments(args), "rows": rows, "role_probe": probe}
    return _write_report(Path(args.out), results, prior_table(results))


def prior_table(results: dict) -> str:
    """Markdown table of ``eval prior``'s results."""
    rows = results["rows"]
    lines = ["# Context prior evaluation", "",
             "| prior | guidance | samples from | cos(true target) | cos(other targets) | recall@10 | role accuracy |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        for name in ("context", "unconditional"):
            m = r[name]
            acc = "–" if m.get("role_acc") is None else f"{m['role_acc']:.3f}"
            lines.append(f"| {r['prior']} | {r['guidance']:g} | {name} | {m['cos_true']:.3f} | {m['cos_other']:.3f} | "
                         f"{m['recall@10']:.3f} | {acc} |")
    probe = results["role_probe"]
    knn = next(k for k in probe if k.startswith("knn"))
    ceiling = rows[0].get("role_acc_true_target")
    lines += ["", f"- {rows[0]['pairs']} held-out pairs with a context, {rows[0]['samples']} samples each; role accuracy "
                  f"= nearest role centroid of the training targets; its ceiling on the true targets: "
                  f"{'–' if ceiling is None else f'{ceiling:.3f}'}.",
              f"- Role from the context embedding alone ({probe['pairs']} pairs): linear probe {probe['linear']:.3f} "
              f"(train {probe['linear_train']:.3f}), {knn[3:]}-NN {probe[knn]:.3f}, majority role {probe['majority']:.3f}."]
    return "\n".join(lines) + "\n"
