"""Where a trainer runs: the Lightning accelerator, devices, nodes, strategy and precision of a run, from
the command line's ``--device / --devices / --num-nodes / --strategy / --precision``; and which process
of a multi-process run this is.

A multi-process run is started by Lightning's own launcher (it re-runs the command once per extra
device, with ``LOCAL_RANK`` set), by ``torchrun`` (``RANK`` / ``LOCAL_RANK``) or by SLURM
(``SLURM_PROCID`` / ``SLURM_LOCALID``); :func:`launcher_ranks` reads these before any Trainer exists,
so that work to be done once (caches, reports, exports) is done by the right process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import ConfigError, InputError
from ..torchutil import resolve_precision


@dataclass
class DeviceConfig:
    """Where training runs: ``device`` auto (cuda > mps > cpu) / cpu / cuda / mps, ``devices`` per node
    (a count or "auto"), ``num_nodes``, ``strategy`` auto / ddp / fsdp (fsdp: CUDA only)."""

    device: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise ConfigError(f"--device must be auto, cpu, cuda or mps, got '{self.device}'")
        if self.strategy not in ("auto", "ddp", "fsdp"):
            raise ConfigError(f"--strategy must be auto, ddp or fsdp, got '{self.strategy}'")
        if self.devices != "auto" and int(self.devices) < 1 or self.num_nodes < 1:
            raise ConfigError("--devices and --num-nodes must be >= 1")

    def accelerator(self) -> str:
        """The accelerator name: ``auto`` resolved to cuda, else mps, else cpu; InputError when the
        asked one is not available to this torch build."""
        cuda = torch.cuda.is_available()
        mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        if self.device == "auto":
            return "cuda" if cuda else "mps" if mps else "cpu"
        if (self.device == "cuda" and not cuda) or (self.device == "mps" and not mps):
            raise InputError(f"--device {self.device}: no such device is available to this torch ({torch.__version__})")
        return self.device

    def trainer_kwargs(self, precision: str) -> dict:
        """Lightning Trainer arguments (accelerator, devices, num_nodes, strategy, precision); ``precision``
        ``auto``: bf16-mixed on a CUDA GPU with bf16 (else 16-mixed), 32-true on MPS, the CPU default
        (:func:`~diffariff.torchutil.resolve_precision`) on a CPU."""
        acc = self.accelerator()
        if precision == "auto":
            if acc == "cuda":
                precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
            else:
                precision = "32-true" if acc == "mps" else resolve_precision("auto")
        strategy: object = self.strategy
        if self.strategy == "fsdp":
            if acc != "cuda":
                raise InputError("--strategy fsdp needs CUDA GPUs (--device cuda); use ddp on CPUs")
            from lightning.pytorch.strategies import FSDPStrategy

            from ..nets.dit import DiTBlock

            strategy = FSDPStrategy(auto_wrap_policy={DiTBlock}, use_orig_params=True)
        return dict(accelerator=acc, devices=self.devices, num_nodes=int(self.num_nodes), strategy=strategy,
                    precision=precision)


def launcher_ranks() -> tuple[bool, bool]:
    """(global rank 0, local rank 0) of this process, from the variables set by Lightning's launcher,
    ``torchrun`` or SLURM; a process started alone is both."""
    env = os.environ
    local = int(env.get("LOCAL_RANK", env.get("SLURM_LOCALID", 0)))
    rank = env.get("RANK", env.get("SLURM_PROCID"))
    node = int(env.get("NODE_RANK", env.get("GROUP_RANK", 0)))
    return (int(rank) == 0 if rank is not None else local == 0 and node == 0), local == 0
