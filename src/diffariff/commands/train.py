"""``diffariff train MODEL ...``: one sub-command per trainable model.

Each model's training module (``diffariff.train.<name>``) exposes ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them, importing lazily so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib

#: model name -> (module, one-line help)
TRAINABLE = {
    "codec": ("diffariff.train.codec", "the consistency autoencoder (audio <-> 64-channel latents)"),
    "clap": ("diffariff.train.clap", "the built-in audio/text CLAP embedding model"),
    "bridge": ("diffariff.train.bridge", "the text-to-audio CLAP embedding bridge (diffusion MLP)"),
    "diffusion": ("diffariff.train.diffusion", "the latent diffusion model (EDM or consistency)"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model (resumable; see `diffariff train MODEL -h`)")
    models = parser.add_subparsers(dest="model", metavar="MODEL")
    for name, (module_name, help_text) in TRAINABLE.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        sub = models.add_parser(name, help=help_text)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
