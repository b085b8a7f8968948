"""Training throughput with 1 vs N processes (torchrun; gloo on CPU), measured interleaved.

    python bench/distributed.py --features runs/kdd_table/c20_s1/train.features.h5 --reps 3
    python bench/distributed.py --processes 1 2 --short-epochs 2 --long-epochs 8     # the defaults

Workload: a features file (default: the KDDCUP99 20 % train half made by bench/kdd_table.py,
247,010 x 118) and its clusters file (made here with ``deepuad cluster`` if absent), the CLI
defaults otherwise (net 118-60-30-10 tanh, batch 1024, Adam 1e-3, 1 thread per process).

1. epochs: for each process count, ``deepuad train`` with ``--epochs short`` and ``--epochs long``
   and no re-selection (``--reselect-every`` beyond the budget); (long - short) / (long - short
   epochs) is the time of one epoch without start-up (imports, process group, reading features),
   and the short run minus its epochs is the start-up. Interleaved, median of ``--reps``.
2. whole run: the default training (re-selection every 10 epochs, until converged) per process
   count, wall time and train AUROC (the features carry labels), median of ``--reps``.

Writes bench/results/distributed.md and distributed.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def train_command(processes: int, *args) -> list[str]:
    launcher = [sys.executable, "-m", "deepuad"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", "-m", "deepuad"]
    return [*launcher, "train", *map(str, args), "--json", "--threads", "1"]


def timed(command: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, default=Path("runs/kdd_table/c20_s1/train.features.h5"))
    parser.add_argument("--clusters", type=Path, default=None, help="[default: <features stem>.clusters.h5, made if absent]")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--short-epochs", type=int, default=2)
    parser.add_argument("--long-epochs", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-whole", action="store_true", help="only section 1")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "deepuad_bench_distributed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "distributed.md")
    parser.add_argument("--from-json", action="store_true", help="only re-write the Markdown from the JSON beside --out")
    args = parser.parse_args()
    if args.from_json:
        print(render(args.out))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    clusters = args.clusters or args.features.with_name(args.features.name.replace(".features.h5", "") + ".clusters.h5")
    if not clusters.exists():
        subprocess.run([sys.executable, "-m", "deepuad", "--quiet", "cluster", str(args.features), "-o", str(clusters)],
                       env=ENV, check=True)
    model = args.workdir / "model.h5"
    no_reselection = ("--reselect-every", args.long_epochs + 1)

    runs: dict[int, dict[str, list]] = {n: {"short": [], "long": [], "whole": [], "auroc": [], "epochs": []} for n in args.processes}
    loads = []
    for rep in range(args.reps):
        for n in args.processes:  # interleaved: a drift in machine load hits every process count alike
            for key, epochs in (("short", args.short_epochs), ("long", args.long_epochs)):
                seconds, _ = timed(train_command(n, args.features, clusters, "-o", model, "--epochs", epochs, *no_reselection))
                runs[n][key].append(seconds)
            if not args.skip_whole:
                seconds, summary = timed(train_command(n, args.features, clusters, "-o", model))
                runs[n]["whole"].append(seconds)
                runs[n]["auroc"].append(summary.get("train_auroc"))
                runs[n]["epochs"].append(summary["epochs"])
            loads.append(os.getloadavg()[0])
            print(f"rep {rep} processes {n}: " + json.dumps({k: v[-1] for k, v in runs[n].items() if v}), flush=True)

    span = args.long_epochs - args.short_epochs
    results = {}
    for n in args.processes:
        per_epoch = (statistics.median(runs[n]["long"]) - statistics.median(runs[n]["short"])) / span
        results[n] = {
            "seconds_per_epoch": per_epoch,
            "startup_seconds": statistics.median(runs[n]["short"]) - args.short_epochs * per_epoch,
            "whole_seconds": statistics.median(runs[n]["whole"]) if runs[n]["whole"] else None,
            "whole_epochs": runs[n]["epochs"], "train_auroc": runs[n]["auroc"], "raw": runs[n],
        }
    saved = {"loads": loads, "results": results, "span": span, "features": str(args.features), "argv": sys.argv[1:]}
    args.out.with_suffix(".json").write_text(json.dumps(saved, indent=1))
    print(render(args.out))


def render(out: Path) -> str:
    """Write ``out`` (Markdown) from the JSON beside it; ``--from-json`` re-renders without measuring."""
    saved = json.loads(out.with_suffix(".json").read_text())
    results = {int(n): r for n, r in saved["results"].items()}
    span, loads = saved["span"], saved["loads"]
    base = results[min(results)]
    lines = [
        "# Training with 1 vs N processes (torchrun, gloo, 1 thread each)", "",
        f"Features: `{saved['features']}`; {os.cpu_count()} cores; 1-min load after each rep: "
        f"{', '.join(f'{v:.1f}' for v in loads)}. Median of {len(base['raw']['short'])} interleaved reps. "
        f"Regenerate: `python bench/distributed.py {' '.join(saved['argv'])}`.", "",
        "| processes | s / epoch | per rep | speed-up per epoch | start-up s | whole default run s | speed-up whole | epochs | train AUROC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in results.items():
        whole = f"{r['whole_seconds']:.1f}" if r["whole_seconds"] else "–"
        whole_up = f"{base['whole_seconds'] / r['whole_seconds']:.2f}x" if r["whole_seconds"] else "–"
        auroc = ", ".join(f"{a:.4f}" for a in r["train_auroc"] if a is not None) or "–"
        per_rep = ", ".join(f"{(b - a) / span:.2f}" for a, b in zip(r["raw"]["short"], r["raw"]["long"]))
        lines.append(f"| {n} | {r['seconds_per_epoch']:.2f} | {per_rep} | {base['seconds_per_epoch'] / r['seconds_per_epoch']:.2f}x | "
                     f"{r['startup_seconds']:.1f} | {whole} | {whole_up} | {sorted(set(r['whole_epochs'])) or '–'} | {auroc} |")
    if len({tuple(r["whole_epochs"]) for r in results.values()}) > 1:
        lines += ["", "The whole runs stopped after different numbers of epochs (different weights lead to different "
                  "re-selections and a different convergence point), so the whole-run speed-up compares different "
                  "amounts of work; the per-epoch column is the like-for-like comparison."]
    out.write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
