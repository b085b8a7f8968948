"""Cost on small data: the four commands of the default pipeline, as a user runs them, per panel set.

    python bench/cost.py                      # every ADBench set under --max-rows rows -> bench/results/cost.md

For each set: `deepuad extract`, `cluster`, `train --threads 1`, `score --threads 1` as separate
processes (imports included: that is what a user waits for), then `deepuad run` (the same four
stages in one process), --reps times; the table gives the median wall time of each command, of the
four together and of `run`, and the machine's load while it ran (these machines are shared: a load
above the core count slows everything). The "imports" columns are processes that only import what
each command needs: NumPy and h5py (`cluster`: the mixture and its k-means are deepuad's own), torch
(`train`: the isolation forest is deepuad's own too), NumPy and h5py (`score` of the rows the model
was trained on takes the scores `train` stored, without torch): the floor that each pays, whatever
the data; "floor" is the three together. One untimed pass over the first set comes first, so that
no set pays for reading the libraries from a cold disk cache (the first command after a reboot does).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from common import LoadSampler, git_state, machine_info  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "odds_adbench"
RESULTS = Path(__file__).parent / "results"
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
COMMANDS = (("extract", "{data} -o f.h5"), ("cluster", "f.h5 -o c.h5"), ("train", "f.h5 c.h5 -o m.h5 --threads 1"),
            ("score", "m.h5 f.h5 -o s.h5 --threads 1"))
ONE_PROCESS = ("run", "{data} -o out --threads 1")
# the heavy imports of cluster, train and score: what each pays before any work
IMPORTS = {"cluster": "import numpy, h5py", "train": "import torch, h5py", "score": "import numpy, h5py"}


def pipeline(data: Path, folder: Path) -> dict[str, float]:
    seconds = {}
    for name, args in (*COMMANDS, ONE_PROCESS):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "deepuad", "--quiet", name, *args.format(data=data).split()],
                              cwd=folder, env=ENV, capture_output=True, text=True)
        seconds[name] = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{name} on {data.name} exited {done.returncode}: {done.stderr.strip()}")
    for name, statement in IMPORTS.items():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], env=ENV, check=True)
        seconds[f"imports {name}"] = time.perf_counter() - start
    seconds["floor"] = sum(seconds[f"imports {name}"] for name in IMPORTS)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-rows", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", default=None, help="only these file stems")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    files = [p for p in sorted(SHARED.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0]))
             if (args.datasets is None or p.stem in args.datasets) and len(np.load(p)["y"]) < args.max_rows]
    if files:  # one untimed pass first: the first process after a while reads torch's libraries from disk
        with tempfile.TemporaryDirectory() as folder:
            pipeline(files[0], Path(folder))
    sampler = LoadSampler()
    sampler.start()
    machine = machine_info("torch", "numpy", "h5py")
    lines = ["# Cost on small data: the default pipeline, command by command", "",
             f"Regenerate: `python bench/cost.py`. Wall seconds, median of {args.reps}, each command a new process "
             "(imports included), one thread, after one untimed pass over the first set. Code: " + f"{git_state()['commit']}.", "",
             # the goal is in seconds, so the table says what it was measured on (the floor column scales with it)
             f"Machine: {machine['cpu_model']}, {machine['nproc']} cores; Python {machine['python']}, torch {machine['torch']}, "
             f"NumPy {machine['numpy']}, h5py {machine['h5py']}.", "",
             "| set | rows | extract | cluster | train | score | all four | run (one process) | imports: cluster / train / score "
             "| floor | machine load |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    totals, run_totals, floors = [], [], []
    for path in files:
        started = time.time()
        runs = []
        for _ in range(args.reps):
            with tempfile.TemporaryDirectory() as folder:
                runs.append(pipeline(path, Path(folder)))
        median = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
        total = statistics.median(sum(r[name] for name, _ in COMMANDS) for r in runs)
        totals.append(total)
        run_totals.append(median["run"])
        floors.append(median["floor"])
        load = sampler.window(started, time.time())
        lines.append(f"| {path.stem} | {len(np.load(path)['y'])} | " + " | ".join(f"{median[n]:.1f}" for n, _ in COMMANDS)
                     + f" | {total:.1f} | {median['run']:.1f} | "
                     + " / ".join(f"{median[f'imports {name}']:.1f}" for name in IMPORTS) + f" | {median['floor']:.1f} | {load['mean']} |")
        print(lines[-1], flush=True)
    sampler.stop()
    if totals:
        lines += ["", f"{sum(t < 10 for t in totals)} of {len(totals)} sets under 10 s for the four commands; "
                      f"slowest {max(totals):.1f} s, median {statistics.median(totals):.1f} s.",
                  "", f"{sum(t < 10 for t in run_totals)} of {len(run_totals)} sets under 10 s with `deepuad run`; "
                      f"slowest {max(run_totals):.1f} s, median {statistics.median(run_totals):.1f} s.",
                  "", f"The imports of cluster, train and score alone (the floor) take {statistics.median(floors):.1f} s "
                      f"(median; {min(floors):.1f} to {max(floors):.1f} s) before any work."]
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "cost.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
