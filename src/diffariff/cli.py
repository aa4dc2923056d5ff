"""The ``diffariff`` command: one sub-command per job, each defined in the module that owns it.

Every command module exposes ``register(subparsers)``, adding its parser and setting
``func=<callable(args) -> int>`` as the handler. Errors of type :class:`DiffariffError` are printed
as one line (``diffariff: error: ...``) with the error's exit code; a traceback only appears with
``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import DiffariffError

#: Modules that contribute sub-commands, in --help order. A module that fails to import because an
#: optional dependency is missing is skipped, never fatal for the other commands.
COMMAND_MODULES = (
    "diffariff.commands.demo",
    "diffariff.data.synth.cli",
    "diffariff.commands.train",
    "diffariff.commands.latents",
    "diffariff.eval.cli",
    "diffariff.commands.generate",
    "diffariff.commands.bundle",
    "diffariff.commands.reconstruct",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffariff",
        description="Generate an instrument stem that fits a musical context (Diff-A-Riff family).",
    )
    parser.add_argument("--version", action="version", version=f"diffariff {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
                continue  # that command is not part of this build yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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


if __name__ == "__main__":
    sys.exit(main())
