"""Device names: ``cpu``, ``cuda``, ``cuda:N`` (``gpu`` and ``auto`` accepted).

``resolve_device`` never raises for missing hardware: it reports a fallback, so a node can
decide to run on the CPU and say so on /diagnostics. ``require_device`` is the strict form
``load_pipeline`` uses, because a silent fallback would make a GPU benchmark measure the CPU.
"""

from __future__ import annotations

import re

from ad_perception.runtime.errors import RuntimeConfigError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(device: str) -> tuple[str, bool]:
    """(device to use, fell_back): ``cuda`` without a usable GPU resolves to ``("cpu", True)``;
    ``auto`` picks CUDA when present. Unknown names raise ``RuntimeConfigError``."""
    name = (device or "auto").strip().lower()
    if name == "gpu":
        name = "cuda"
    if name == "cpu":
        return "cpu", False
    if name == "auto":
        return ("cuda", False) if _cuda_count() else ("cpu", False)
    match = _CUDA.match(name)
    if match is None:
        raise RuntimeConfigError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or "
                                 f"'auto'")
    index = int(match.group(1) or 0)
    if index >= _cuda_count():
        return "cpu", True
    return name, False


def require_device(device: str) -> str:
    """The resolved device, or ``RuntimeConfigError`` when it would have to fall back."""
    resolved, fell_back = resolve_device(device)
    if fell_back:
        raise RuntimeConfigError(
            f"device {device!r} requested but no such CUDA device is available here "
            f"(torch.cuda.device_count() = {_cuda_count()}); use device='cpu', or call "
            f"resolve_device() and fall back explicitly")
    return resolved
