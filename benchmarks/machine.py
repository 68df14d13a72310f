"""What the benchmarks ran on: CPU model and cores, memory, Python, NumPy and its BLAS,
diffprog, the peers' versions, and the GPU with `--device gpu`.

Owns `info` (a JSON-ready dict) and `line` (one line of it for the table and the chart).
Imports: the standard library, numpy and diffprog (for its version).
"""

from __future__ import annotations

import os
import platform
import warnings
from typing import Any

import numpy as np


def _cpuinfo_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _blas() -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - best effort: older NumPy has no dict mode
        return "unknown"


def _gpu() -> dict[str, Any]:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "memory_gb": round(props["totalGlobalMem"] / 2**30, 1),
        "cupy": cupy.__version__,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def info(device: str, peer_versions: dict[str, str]) -> dict[str, Any]:
    import diffprog

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    out = {
        "cpu": _cpuinfo_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gb": _mem_total_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
        "diffprog": getattr(diffprog, "__version__", None) or _dist_version("diffprog"),
        "peers": dict(peer_versions),
        "load_average": list(os.getloadavg()),
    }
    if device == "gpu":
        out["gpu"] = _gpu()
    return out


def line(info: dict[str, Any]) -> str:
    peers = ", ".join(f"{k} {v}" for k, v in info["peers"].items()) or "no peers"
    gpu = f"; GPU {info['gpu']['name']}, CuPy {info['gpu']['cupy']}" if "gpu" in info else ""
    return (
        f"{info['cpu']}, {info['cores_usable']} of {info['cores']} cores, "
        f"{info['memory_gb']} GB; Python {info['python']}, NumPy {info['numpy']} "
        f"({info['blas']}), diffprog {info['diffprog']}; {peers}{gpu}"
    )


MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap for reuse, in this process and its children.

    With glibc's defaults an array of 128 kB or more is fresh memory from the OS each time it
    is allocated, and pays a page fault per 4 kB touched: ~90 us for a 256 kB array here,
    several times the arithmetic on it. Code that frees its temporaries at once (hand-written
    NumPy) mostly escapes this through glibc's adaptive threshold; a tape, which keeps the
    forward pass's arrays for the backward pass, does not. Raising the mmap and trim
    thresholds (what the MALLOC_*_ variables do at start-up) lets every implementation reuse
    its memory. Returns False where glibc's mallopt is not available.
    """
    os.environ.update(MALLOC_ENV)  # W6's fresh processes read these at start-up
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, int(MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]))
                and libc.mallopt(m_trim_threshold, int(MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"])))
