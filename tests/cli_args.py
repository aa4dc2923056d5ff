"""Parse a training command's options from keywords, as its command line would give them."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def parse_options(add_options: Callable[[argparse.ArgumentParser], None], **options) -> argparse.Namespace:
    """``add_options``' parser applied to ``--key value`` for each keyword (``key_name`` becomes
    ``--key-name``): True gives the bare flag, a list gives several values, anything else ``str(value)``."""
    parser = argparse.ArgumentParser()
    add_options(parser)
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return parser.parse_args(argv)
