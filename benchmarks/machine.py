"""Machine description and BENCHMARKS.md bookkeeping shared by the benchmark scripts."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import resource
import shlex
import sys
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    match = re.search(r"model name\s*:\s*(.+)", text)
    return match.group(1).strip() if match else "unknown CPU"


def machine_line() -> str:
    """One line naming the machine, software and date of a measurement."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}, "
        f"{dt.date.today().isoformat()}"
    )


def command_line(script: str, argv: list[str] | None) -> str:
    """The shell-quoted command that reproduces a run: ``python benchmarks/SCRIPT`` plus ``argv``
    (``None``: this process's own arguments)."""
    return shlex.join(["python", f"benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)])


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of BENCHMARKS.md with ``body``."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    block = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: block + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    tmp = BENCHMARKS_MD.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, BENCHMARKS_MD)


def publish(title: str, lines: list[str], write: bool = True) -> None:
    """Print a benchmark section and (when ``write``) store it as ``## title`` in BENCHMARKS.md."""
    body = "\n".join(lines)
    print(body)
    if write:
        write_section(title, body)
