"""Device choice and mixed precision, decided in one place.

* ``auto`` picks CUDA when present, else CPU.
* Mixed precision: bf16 autocast on CUDA; on CPU only where the processor has native bf16 support
  (AVX512-BF16 or AMX), where oneDNN makes the VGG forward several times faster. Parameters and
  optimised images stay float32; autocast only changes the dtype of conv/matmul compute.
* Out-of-memory is recognised here so the facade can retry smaller or on the CPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache

import torch


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a torch.device; asking for CUDA without one is an error."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from .errors import StylizerError

        raise StylizerError("CUDA was requested but no CUDA device is available")
    return device


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU advertises native bf16 (AVX512-BF16 or AMX); override with STYLIZER_CPU_BF16=0/1."""
    forced = os.environ.get("STYLIZER_CPU_BF16")
    if forced is not None:
        return forced.strip() not in ("0", "false", "no", "")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The reduced dtype to autocast to on ``device``, or None for plain float32."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Autocast to the device's preferred reduced precision, or a no-op where it would not help."""
    dtype = autocast_dtype(device, enabled)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def is_oom(exc: BaseException) -> bool:
    """True for CUDA (or CPU allocator) out-of-memory errors, which are worth retrying smaller."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
