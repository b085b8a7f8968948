"""What measuring drift adds to ``score``: the same model and features scored with and without the
model's drift reference (a copy of the model with ``drift_reference`` removed scores without
measuring drift), in one process, alternating, the median of each. CPU time is the measure (the
machines this runs on are shared: wall time follows the load); wall time is shown beside it.

    python bench/drift_cost.py                      # 1,000,000 rows x 118 columns (the issue's size)
    python bench/drift_cost.py --rows 200000        # smaller, on a busy machine
    python bench/drift_cost.py --counting-only      # drift's own work alone, in seconds

The data is bench/memory.py's synthetic KDD-like table (38 numeric columns, 4 one-hot blocks of
20); the model is trained for 2 epochs on 20,000 rows of it. Writes bench/results/drift_cost.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_state, LoadSampler, machine_info  # noqa: E402
from memory import generator_state, synthetic_chunk, WIDTH, write_big_features  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def cli(*args) -> None:
    from deepuad.cli import main

    try:
        main(["--quiet", *map(str, args)])
    except SystemExit as exit_:
        if exit_.code:
            raise RuntimeError(f"deepuad {' '.join(map(str, args))} exited {exit_.code}") from None


def prepare(folder: Path, rows: int) -> tuple[Path, Path, Path]:
    """(model with a drift reference, the same without one, big features)."""
    rng, centers, preferred = generator_state(0)
    X, y = synthetic_chunk(rng, 20_000, centers, preferred)
    np.savez(folder / "small.npz", X=X, y=y)
    cli("extract", folder / "small.npz", "-o", folder / "small.features.h5")
    cli("cluster", folder / "small.features.h5", "-o", folder / "small.clusters.h5")
    cli("train", folder / "small.features.h5", folder / "small.clusters.h5", "-o", folder / "drift.model.h5", "--epochs", "2")
    shutil.copy(folder / "drift.model.h5", folder / "plain.model.h5")
    with h5py.File(folder / "plain.model.h5", "a") as f:
        del f["drift_reference"]
    write_big_features(folder / "small.features.h5", folder / "big.features.h5", rows)
    return folder / "drift.model.h5", folder / "plain.model.h5", folder / "big.features.h5"


def counting_cost(rows: int, chunk: int = 16_384) -> float:
    """CPU seconds of drift's own work on ``rows`` synthetic rows: DriftCounter over score's
    chunks, then the PSI (no file, no network), for a reference fitted on 20,000 rows."""
    from deepuad.estimators import drift

    rng, centers, preferred = generator_state(0)
    X, _ = synthetic_chunk(rng, 20_000, centers, preferred)
    reference = drift.fit_reference(X, rng.random(len(X)), cut=0.95)
    chunks = [synthetic_chunk(rng, chunk, centers, preferred)[0] for _ in range(4)]  # reused: generating is not measured
    scores = rng.random(rows).astype(np.float32)
    t0 = time.process_time()
    counter = drift.DriftCounter(reference, rows)
    for begin in range(0, rows, chunk):
        part = chunks[(begin // chunk) % 4][: min(chunk, rows - begin)]
        counter.add(part, scores[begin : begin + len(part)], begin)
    counter.result(scores)
    return time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "drift_cost.md")
    parser.add_argument("--counting-only", action="store_true", help="Only drift's own work (seconds; prints, writes nothing).")
    args = parser.parse_args()
    if args.counting_only:
        print(f"drift's own work on {args.rows:,} rows: {counting_cost(args.rows):.3f} CPU s")
        return
    from deepuad.stages.score import score

    machine = machine_info("numpy", "torch", "h5py")
    load = LoadSampler()
    load.start()
    started = time.time()
    times: dict[str, list[float]] = {"with drift": [], "without": []}
    walls: dict[str, list[float]] = {"with drift": [], "without": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with_drift, plain, big = prepare(folder, args.rows)
        prepared = time.time()
        for repeat in range(args.repeats):
            order = [("with drift", with_drift), ("without", plain)]
            for name, model in order if repeat % 2 == 0 else order[::-1]:
                t0, w0 = time.process_time(), time.perf_counter()
                summary = score(model, big, output=folder / f"{repeat}.scores.h5", threads=1)
                times[name].append(time.process_time() - t0)
                walls[name].append(time.perf_counter() - w0)
                assert ("drift_max_psi" in summary) == (name == "with drift"), summary
    counting = counting_cost(args.rows)
    load.stop()
    medians = {name: statistics.median(values) for name, values in times.items()}
    added = medians["with drift"] / medians["without"] - 1
    window = load.window(prepared, time.time())
    state = git_state()
    lines = [
        "# What measuring drift adds to score (bench/drift_cost.py)", "",
        f"Machine: `nproc` = {machine['nproc']}, CPU: {machine['cpu_model']}, numpy {machine['numpy']}, torch {machine['torch']}, "
        f"h5py {machine['h5py']}; 1-min load average {window['mean']} (min {window['min']}, max {window['max']}) while scoring, "
        "so wall times are indicative. Code: " + f"{state['commit']}" + (" with uncommitted changes" if state["uncommitted_package_files"] else "") + ".",
        "",
        f"Command: `python bench/drift_cost.py --rows {args.rows} --repeats {args.repeats}`; whole run {(time.time() - started) / 60:.1f} min. "
        f"{args.rows:,} rows x {WIDTH} columns, one thread; `score` in process, with the model and with a copy of it without "
        "`drift_reference`, alternating; the median of each.", "",
        "| score | median CPU s | runs, CPU s | runs, wall s |", "|---|---:|---|---|",
        *(f"| {name} | {medians[name]:.2f} | {', '.join(f'{v:.2f}' for v in values)} | {', '.join(f'{v:.2f}' for v in walls[name])} |"
          for name, values in times.items()),
        "", f"Drift adds **{100 * added:+.1f} %** to score's CPU time (goal: at most +10 % on 1M rows). Its own work "
        f"(`DriftCounter` over score's chunks and the PSI, no file): {counting:.2f} CPU s, "
        f"{100 * counting / medians['without']:.1f} % of score without it.", "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
