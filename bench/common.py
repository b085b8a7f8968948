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


def cpu_model() -> str:
    """The CPU as a results table should name it. "AMD EPYC" alone has named machines that were twice
    as fast or as slow as each other, so the family and model numbers and the kernels that round and
    time the arithmetic (torch's CPU capability, NumPy's BLAS core) come with the name."""
    fields = {}
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
        if not line.strip():
            break  # the first processor's block is enough
    name = fields.get("model name") or platform.processor()
    kernels = []
    try:
        import torch
        kernels.append(f"torch {torch.backends.cpu.get_cpu_capability()}")
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info
        kernels += [f"{lib['internal_api']} {lib.get('architecture')}" for lib in threadpool_info()
                    if lib.get("user_api") == "blas"][:1]
    except ImportError:
        pass
    family = f"family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields else ""
    return ", ".join(x for x in [f"{name} ({family})" if family else name, " / ".join(kernels)] if x)


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
