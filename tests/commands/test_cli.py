"""The ``diffariff`` entry point: lazy sub-command registration, every command's --help, fast start-up."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from diffariff.cli import COMMANDS, main


def _registered(module_name: str) -> dict[str, str]:
    """name -> help of the sub-commands a command module registers."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(module_name).register(sub)
    return {action.dest: action.help for action in sub._choices_actions}


def test_command_table_matches_the_modules():
    modules = {module for _, module, _ in COMMANDS}
    registered = {}
    for module in modules:
        registered.update(_registered(module))
    assert set(registered) == {name for name, _, _ in COMMANDS}
    for name, _, help_text in COMMANDS:
        assert registered[name] == help_text, name


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert f"diffariff {name}" in capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name, _, _ in COMMANDS:
        assert name in out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_help_and_version_load_no_model_code():
    """``--help``, ``--version`` and every command's ``--help`` import no heavy module (one process)."""
    code = ("import contextlib, io, sys\n"
            "from diffariff.cli import COMMANDS, main\n"
            "for argv in (['--help'], ['--version'], *([name, '--help'] for name, _, _ in COMMANDS)):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main(argv)\n"
            "    heavy = [m for m in ('torch', 'lightning', 'librosa', 'scipy', 'numpy') if m in sys.modules]\n"
            "    assert not heavy, (argv, heavy)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
