"""``diffariff bundle create|info``: assemble a model bundle from trained checkpoints, or describe one.

A bundle (see :mod:`diffariff.bundle`) is what :class:`~diffariff.pipeline.Accompanist` and every
``generate`` / ``eval generation --bundle`` command loads. ``create`` validates that the diffusion
models were trained on latents of the given codec and embeddings of the given CLAP before anything
becomes visible.
"""

from __future__ import annotations

import argparse
import json

CREATE_EXAMPLES = """examples:
  diffariff bundle create my_bundle --codec runs/codec/codec_ema.safetensors \\
      --clap runs/clap/clap.safetensors --edm runs/dit/diffusion_ema.safetensors \\
      --consistency runs/cdit/diffusion_ema.safetensors --example context=song/mixture.flac
  diffariff bundle info default
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bundle", help="assemble or describe a model bundle")
    sub = parser.add_subparsers(dest="bundle_command", metavar="ACTION")
    fmt = argparse.RawDescriptionHelpFormatter
    c = sub.add_parser("create", help="assemble a bundle folder from checkpoints (validated, atomic)",
                       epilog=CREATE_EXAMPLES, formatter_class=fmt)
    c.add_argument("out", help="bundle folder to write")
    c.add_argument("--codec", required=True, help="codec checkpoint (.safetensors)")
    c.add_argument("--clap", required=True, help="CLAP checkpoint (.safetensors)")
    c.add_argument("--edm", help="EDM latent-diffusion checkpoint")
    c.add_argument("--consistency", help="consistency latent-diffusion checkpoint")
    c.add_argument("--bridge", help="text-to-audio CLAP bridge checkpoint (optional)")
    c.add_argument("--prior", help="context prior checkpoint (optional; `diffariff train prior` or `train neighbour-prior`)")
    c.add_argument("--pitch-critic", help="pitch critic fitted to the codec (optional; `diffariff train pitch-critic`): "
                                          "fast harmony guidance")
    c.add_argument("--example", action="append", default=[], metavar="NAME=FILE",
                   help="example audio shipped with the bundle (e.g. context=mix.flac); repeatable")
    c.add_argument("--notes", default="", help="free text stored in the manifest")
    c.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")
    c.set_defaults(func=run_create)
    i = sub.add_parser("info", help="validate a bundle and print its parts as JSON")
    i.add_argument("bundle", nargs="?", default="default", help="bundle folder or 'default'")
    i.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_create(args: argparse.Namespace) -> int:
    from ..bundle import save_bundle
    from ..errors import InputError

    diffusion = {m: p for m, p in (("edm", args.edm), ("consistency", args.consistency)) if p}
    if not diffusion:
        raise InputError("give --edm and/or --consistency (a bundle needs a diffusion model)")
    example = {}
    for item in args.example:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--example must look like NAME=FILE, got {item!r}")
        example[name] = path
    bundle = save_bundle(args.out, codec=args.codec, clap=args.clap, diffusion=diffusion, bridge=args.bridge,
                         prior=args.prior, pitch_critic=args.pitch_critic, example=example or None, notes=args.notes, overwrite=args.overwrite)
    print(f"bundle {bundle.root}: modes {', '.join(bundle.modes)}"
          f"{', bridge' if bundle.bridge else ''}{', prior' if bundle.prior else ''}{', pitch critic' if bundle.pitch_critic else ''}{', example ' + ', '.join(bundle.example) if bundle.example else ''}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..bundle import open_bundle
    from ..checkpoint import read_checkpoint_metadata

    bundle = open_bundle(args.bundle)
    parts = {"codec": bundle.codec, "clap": bundle.clap, **{f"diffusion.{m}": p for m, p in bundle.diffusion.items()}}
    if bundle.bridge:
        parts["bridge"] = bundle.bridge
    if bundle.prior:
        parts["prior"] = bundle.prior
    if bundle.pitch_critic:
        parts["pitch_critic"] = bundle.pitch_critic
    info = {"root": str(bundle.root), "modes": list(bundle.modes), "notes": bundle.notes,
            "example": {k: str(v) for k, v in bundle.example.items()}, "parts": {}}
    for name, path in parts.items():
        meta = read_checkpoint_metadata(path)
        extra = json.loads(meta.get("extra") or "{}")
        info["parts"][name] = {"file": path.name, "bytes": path.stat().st_size, "kind": meta.get("kind"),
                               **({"step": extra["step"]} if "step" in extra else {})}
    print(json.dumps(info, indent=2))
    return 0
