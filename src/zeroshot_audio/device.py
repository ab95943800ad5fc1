"""One device choice for every stage: ``device: auto`` in conf means CUDA when present, else CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or empty) = the first CUDA device when present, else CPU; else a torch device.

    Asking for CUDA where there is none is an error rather than a silent fall back to the CPU.
    """
    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but CUDA is not available here; "
            "set `device: auto` or `cpu`"
        )
    return resolved
