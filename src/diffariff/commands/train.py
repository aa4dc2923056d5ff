"""``diffariff train MODEL ...``: one sub-command per trainable model.

Each model's training module (``diffariff.train.<name>``) exposes ``add_arguments(parser)`` and
``run(args) -> int``. The module (and with it Lightning, which is slow to import) is loaded only
when that model is trained, so every other ``diffariff`` command starts fast.
"""

from __future__ import annotations

import argparse
import importlib

from ..errors import InputError

#: model name -> (module, one-line help)
TRAINABLE = {
    "codec": ("diffariff.train.codec", "the consistency autoencoder (audio <-> 64-channel latents)"),
    "synth-codec": ("diffariff.train.synth_codec",
                    "the synth codec (codec v2): latents -> oscillator bank + noise, pitch by construction"),
    "clap": ("diffariff.train.clap", "the built-in audio/text CLAP embedding model"),
    "bridge": ("diffariff.train.bridge", "the text-to-audio CLAP embedding bridge (diffusion MLP)"),
    "prior": ("diffariff.train.prior", "the context prior: a fitting stem's CLAP embedding from the context"),
    "neighbour-prior": ("diffariff.train.neighbour_prior",
                        "the neighbour context prior: a role classifier and a bank of embedded pairs"),
    "diffusion": ("diffariff.train.diffusion", "the latent diffusion model (EDM or consistency)"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    lines = "\n".join(f"  {name:<16} {help_text}" for name, (_, help_text) in TRAINABLE.items())
    parser = subparsers.add_parser(
        "train",
        help="train a model (resumable; see `diffariff train MODEL -h`)",
        description=f"Train a model. Models:\n{lines}\n\nOptions of a model: diffariff train MODEL -h",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", choices=sorted(TRAINABLE), metavar="MODEL", help="which model to train")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the model's own options")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    module_name, help_text = TRAINABLE[args.model]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise InputError(f"training '{args.model}' is not available in this build") from None
        raise
    parser = argparse.ArgumentParser(prog=f"diffariff train {args.model}", description=f"Train {help_text}.")
    module.add_arguments(parser)
    model_args = parser.parse_args(args.options)
    model_args.debug = getattr(args, "debug", False)
    return int(module.run(model_args) or 0)
