"""Choosing where tensors live: `auto` means CUDA when available, else the CPU."""

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot be used on this machine."""


def resolve_device(name="auto"):
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> torch.device, checked to be usable here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise DeviceUnavailableError(
            f"unknown device {name!r}: use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)"
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {name!r} was requested but CUDA is not available on this machine "
                f"(torch {torch.__version__}, torch.cuda.is_available() is False); "
                "use --device cpu or --device auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {name!r} was requested but only {torch.cuda.device_count()} "
                "CUDA device(s) exist")
    elif device.type != "cpu":
        raise DeviceUnavailableError(
            f"unsupported device {name!r}: use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    return device
