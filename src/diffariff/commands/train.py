"""``diffariff train MODEL ...``: one sub-command per trainable model.

The models, their options and their one-line help are in :mod:`~diffariff.commands.train_options`
(argparse only). A model's options are parsed first; then its training module
(``diffariff.train.<name>``) is imported and its ``run(args) -> int`` called with them. So that module
(and with it Lightning, which is slow to import) is loaded only when that model is trained, and every
other ``diffariff`` command, and every ``diffariff train ... -h``, starts fast.
"""

from __future__ import annotations

import argparse
import importlib

from ..errors import InputError
from .train_options import TRAINABLE


def register(subparsers: argparse._SubParsersAction) -> None:
    lines = "\n".join(f"  {name:<16} {help_text}" for name, (_, _, help_text) in TRAINABLE.items())
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
    module_name, add_options, help_text = TRAINABLE[args.model]
    parser = argparse.ArgumentParser(prog=f"diffariff train {args.model}", description=f"Train {help_text}.")
    add_options(parser)
    model_args = parser.parse_args(args.options)
    model_args.debug = getattr(args, "debug", False)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise InputError(f"training '{args.model}' is not available in this build") from None
        raise
    return int(module.run(model_args) or 0)
