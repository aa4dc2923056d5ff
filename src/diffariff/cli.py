"""The ``diffariff`` command: one sub-command per job, each defined in the module that owns it.

Every command module exposes ``register(subparsers)``, adding its parser and setting
``func=<callable(args) -> int>`` as the handler. :data:`COMMANDS` names each sub-command with its
module and one-line help, so only the chosen command's module is imported: ``diffariff --help`` and
``diffariff --version`` load no model code and answer at once. Errors of type
:class:`DiffariffError` are printed as one line (``diffariff: error: ...``) with the error's exit
code; a traceback only appears with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import DiffariffError, InputError

#: The sub-commands in --help order: (name, module whose ``register`` adds it, one-line help). The
#: help line is what ``diffariff --help`` shows without importing the module; it must match the
#: module's own (tests/commands/test_cli.py checks that).
COMMANDS = (
    ("demo", "diffariff.commands.demo", "run the README demo (accompaniment, or example stems)"),
    ("corpus", "diffariff.data.synth.cli",
     "render the synthetic multitrack corpus (procedural songs and/or real pieces, FluidSynth stems)"),
    ("train", "diffariff.commands.train", "train a model (resumable; see `diffariff train MODEL -h`)"),
    ("latents", "diffariff.commands.latents", "pre-encode training pairs into a latent cache"),
    ("finetune", "diffariff.commands.finetune", "adapt a bundle's latent model to your own stems (one command, resumable)"),
    ("eval", "diffariff.commands.eval", "evaluate generated stems (Table 1) or the codec"),
    ("analyze", "diffariff.commands.analyze", "tempo, meter and downbeats of an audio file"),
    ("generate", "diffariff.commands.generate", "generate a stem that fits a context mix"),
    ("arrange", "diffariff.commands.generate", "build a multitrack arrangement part by part"),
    ("inpaint", "diffariff.commands.generate", "regenerate a time span of a stem"),
    ("vary", "diffariff.commands.generate", "make variations of a stem"),
    ("bundle", "diffariff.commands.bundle", "assemble or describe a model bundle"),
    ("reconstruct", "diffariff.commands.reconstruct",
     "encode and decode an audio file with the codec (hear the codec)"),
    ("studio", "diffariff.commands.studio", "serve the studio web page (build a track stem by stem)"),
)

#: Modules that contribute sub-commands, in --help order.
COMMAND_MODULES = tuple(dict.fromkeys(module for _, module, _ in COMMANDS))


def _chosen_command(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``diffariff`` parser. With a known ``command``, only that command's module is imported and
    registered (its full parser); otherwise every command is listed by name and help alone."""
    parser = argparse.ArgumentParser(
        prog="diffariff",
        description="Generate an instrument stem that fits a musical context (Diff-A-Riff family).",
    )
    parser.add_argument("--version", action="version", version=f"diffariff {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {name: module for name, module, _ in COMMANDS}
    if command in modules:
        module_name = modules[command]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
                raise InputError(f"the '{command}' command is not part of this build") from None
            raise
        module.register(sub)
    else:
        for name, _, help_text in COMMANDS:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(_chosen_command(argv))
    except DiffariffError as exc:
        print(f"diffariff: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DiffariffError as exc:
        if args.debug:
            raise
        print(f"diffariff: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("diffariff: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep Python's exit flush from failing
        return 0


#: commands that have written and closed every file when they return: the console script ends their
#: process without Python's finalisation (the module teardown after torch, scipy and numba costs ~0.6 s
#: on 2 cores, ~10 % of a 10-s generation's command)
FAST_EXIT = frozenset({"generate", "arrange", "inpaint", "vary", "reconstruct", "analyze", "demo"})


def run() -> None:
    """The ``diffariff`` console script: :func:`main` on ``sys.argv``, then exit with its code (at once,
    after flushing stdout and stderr, for the commands in :data:`FAST_EXIT`)."""
    argv = sys.argv[1:]
    code = main(argv)
    if _chosen_command(argv) in FAST_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
