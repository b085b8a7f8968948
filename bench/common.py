"""What every benchmark records beside its numbers: machine load over time, the code measured, the machine."""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class LoadSampler(threading.Thread):
    """1-minute load average sampled every few seconds, to report it per section."""

    def __init__(self, every: float = 2.0):
        super().__init__(daemon=True)
        self.every, self.samples, self._stop = every, [], threading.Event()

    def run(self):
        while not self._stop.is_set():
            self.samples.append((time.time(), os.getloadavg()[0]))
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()

    def window(self, t0: float, t1: float) -> dict:
        values = [v for t, v in self.samples if t0 <= t <= t1] or [os.getloadavg()[0]]
        return {"mean": round(statistics.mean(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def git_state() -> dict:
    """The commit measured and any uncommitted change to the package."""
    def git(*a):
        done = subprocess.run(["git", *a], capture_output=True, text=True, cwd=ROOT)
        return done.stdout.rstrip() if done.returncode == 0 else None

    dirty = git("status", "--short", "--", "deepuad")
    return {"commit": git("rev-parse", "--short", "HEAD"), "subject": git("log", "-1", "--format=%s"),
            "uncommitted_package_files": [line[3:] for line in (dirty or "").splitlines()]}


def cpu_kernels() -> tuple[str, str]:
    """How this machine does a matrix product: the kernels torch picked for its CPU
    (``torch.backends.cpu.get_cpu_capability``) and NumPy's BLAS with the core it picked (as
    threadpoolctl reports), e.g. ("AVX512", "openblas.Haswell"). They decide how products round
    (tests/golden keeps one reference per pair) and much of how fast they run."""
    import numpy  # noqa: F401  (threadpoolctl lists only the libraries loaded)
    import torch
    from threadpoolctl import threadpool_info

    blas = next((f"{lib['internal_api']}.{lib.get('architecture')}" for lib in threadpool_info()
                 if lib.get("user_api") == "blas"), "unknown")
    return torch.backends.cpu.get_cpu_capability(), blas


def cpu_model() -> str:
    """The CPU as a results table should name it. "AMD EPYC" alone has named machines that were twice
    as fast or as slow as each other, so the family and model numbers and the kernels (``cpu_kernels``)
    come with the name."""
    fields = {}
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
        if not line.strip():
            break  # the first processor's block is enough
    name = fields.get("model name") or platform.processor()
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    capability, blas = cpu_kernels()
    return f"{name}, torch {capability} / {blas}"


def machine_info(*modules: str) -> dict:
    """Cores, CPU, memory, Python, the load at the start, and the version of each module (None if absent)."""
    model = cpu_model()
    mem = next((int(line.split()[1]) // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    info = {"nproc": os.cpu_count(), "cpu_model": model, "mem_total_mib": mem, "python": platform.python_version()}
    for name in modules:
        try:
            info[name] = importlib.import_module(name).__version__
        except ImportError:
            info[name] = None
    info["loadavg_start"] = os.getloadavg()
    return info
