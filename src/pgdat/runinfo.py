"""What produced a result: versions, git SHA, device. Stored with every run and every evaluation JSON."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

import pgdat


def git_sha(path: str | Path = ".") -> str | None:
    """The commit of the git checkout containing ``path`` (with ``-dirty`` if modified), or None. Read-only:
    ``GIT_OPTIONAL_LOCKS=0`` stops ``git status`` from refreshing the index, which takes ``.git/index.lock`` (a kill
    then would leave it behind and block the user's next git command)."""
    env = os.environ | {"GIT_OPTIONAL_LOCKS": "0"}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5,
                             env=env)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=5, env=env)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: torch.device | str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{dev.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run_info(device: torch.device | str = "cpu") -> dict:
    """Versions of pgdat, torch, numpy and Python, the git SHA of the source tree, and the device."""
    src = Path(pgdat.__file__).resolve().parent
    return {"pgdat": pgdat.__version__, "torch": str(torch.__version__), "numpy": np.__version__,
            "python": platform.python_version(), "git_sha": git_sha(src), "device": device_name(device)}
