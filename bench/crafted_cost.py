"""What a crafted artifact under 10 MB can cost deepuad, and the measurements its bounds come from.

    python bench/crafted_cost.py                                   # the committed run
    python bench/crafted_cost.py --widths 3 --rows 20000 --tables 4_breastw.npz --no-kddcup --cases 2   # smoke

Three sections, each written to bench/results/crafted_cost.md (``--out``):

1. throughput: ``deepuad score``'s rows per second with the default score (a network, the k-NN
   distance to 2,000 reference rows, a 100-tree forest, the kept range), one thread and two, at
   ``--widths`` columns: a model trained on 5,000 rows of five blobs (2 epochs: scoring costs
   the same after any number), then a features file of ``--rows`` rows scored by it. Rows per
   second = (rows - 5,000) / (seconds - seconds to score 5,000 of them): start-up and loading
   are left out. Wall and CPU seconds (user + system, which a busy machine inflates less).
2. ratios: what ``extract --compress`` makes of real data: X's declared bytes over its stored
   bytes, and over the whole file's size (the ratio the bound compares), for the KDDCUP sample,
   the ODDS/ADBench tables of ../shared/data (``--tables``) and KDDCUP's 494,021 rows
   (``kddcup99/kdd_cup.npz``, unless ``--no-kddcup``); and the DEEPUAD_MAX_INFLATION that the
   file needs to be read, compressed and plain (X counted by its rows, too).
3. worst: every command of tests/crafted.py's worst cases (the largest X, for the KDDCUP
   sample's model and for models of ``--narrow`` columns; scores; the most rows top can list;
   selections, k-NN reference, forest and network a file under 10 MB may hold under the
   bounds), made from 2,000 KDDCUP-sample rows, in a fresh process each, one thread: exit
   code, wall and CPU seconds, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_state, LoadSampler, machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))
from crafted import NARROW_WIDTHS  # noqa: E402
TRAINING_ROWS = 5_000


def deepuad(*args, cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """Run ``deepuad -q ARGS`` (must exit 0): (wall seconds, CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "deepuad", "-q", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"deepuad {' '.join(map(str, args))} exited {done.returncode}: {done.stderr.strip()}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


# --------------------------------------------------------------------------- 1. throughput
def throughput(widths: list[int], rows: int, folder: Path) -> list[dict]:
    out = []
    for width in widths:
        rng = np.random.default_rng(width)
        centres = rng.random((5, width))
        X = (centres[rng.integers(0, 5, TRAINING_ROWS)] + rng.normal(0, 0.05, (TRAINING_ROWS, width))).astype(np.float32)
        np.save(folder / f"w{width}.npy", X)
        features, clusters, model = (folder / f"w{width}.{kind}.h5" for kind in ("features", "clusters", "model"))
        deepuad("extract", f"w{width}.npy", "-o", features, cwd=folder)
        deepuad("cluster", features, "-o", clusters, cwd=folder)
        deepuad("train", features, clusters, "-o", model, "--epochs", 2, "--threads", 1, cwd=folder)
        small, big = folder / f"w{width}.small.features.h5", folder / f"w{width}.big.features.h5"
        for path, n in ((small, TRAINING_ROWS), (big, rows)):
            path.write_bytes(features.read_bytes())
            with h5py.File(path, "a") as f:  # the same encoding, other rows: score computes every score
                for name in ("X", "y", "ids"):
                    if name in f:
                        del f[name]
                f.attrs["fingerprint"] = "b" * 64
                f.create_dataset("X", data=np.tile(X, (-(-n // TRAINING_ROWS), 1))[:n] + np.float32(1e-3),
                                 chunks=(max(1, min(n, 16384, (1 << 20) // (4 * width))), width))
        unbounded = {**os.environ, "DEEPUAD_MAX_INFLATION": "1100"}  # throughput, whatever rows a file may declare
        for threads in (1, 2):
            small_run = deepuad("score", model, small, "-o", "s.h5", "--threads", threads, cwd=folder, env=unbounded)
            large = deepuad("score", model, big, "-o", "s.h5", "--threads", threads, cwd=folder, env=unbounded)
            out.append({"width": width, "threads": threads, "rows": rows,
                        "rows_per_s_wall": (rows - TRAINING_ROWS) / max(large[0] - small_run[0], 1e-9),
                        "rows_per_s_cpu": (rows - TRAINING_ROWS) / max(large[1] - small_run[1], 1e-9),
                        "wall_s": large[0], "cpu_s": large[1]})
            print(json.dumps(out[-1]), flush=True)
        for path in (small, big, features, clusters, model, folder / "s.h5", folder / f"w{width}.npy"):
            path.unlink(missing_ok=True)
    return out


# --------------------------------------------------------------------------- 2. ratios
def needed_inflation(rows: int, declared: int, size: int) -> int | None:
    """The DEEPUAD_MAX_INFLATION a features file needs to be read (None: none), as
    safe_read.check_inflation counts X: its bytes, or its rows at X_INFLATION.row_bytes each."""
    from deepuad.artifacts.features import X_INFLATION

    counted = max(declared, rows * X_INFLATION.row_bytes)
    return None if counted <= max(X_INFLATION.floor, X_INFLATION.ratio * size) else math.ceil(counted / size)


def ratios(sources: list[tuple[str, Path, list]], folder: Path) -> list[dict]:
    out = []
    for name, path, options in sources:
        row = {"data": name}
        for kind, compress in (("compressed", ["--compress"]), ("plain", [])):
            features = folder / "r.features.h5"
            unbounded = {**os.environ, "DEEPUAD_MAX_INFLATION": "1100"}  # what the writer gives, whatever the bound
            deepuad("extract", path, "-o", features, *compress, *options, cwd=folder, env=unbounded)
            with h5py.File(features) as f:
                X = f["X"]
                declared, stored = X.size * 4, X.id.get_storage_size()
                shape = X.shape
            size = features.stat().st_size
            if compress:
                row.update({"rows": shape[0], "width": shape[1], "X_mib": declared / 2**20, "X_ratio": declared / stored,
                            "file_mib": size / 2**20, "file_ratio": declared / size})
            row[f"{kind}_file_mib"] = size / 2**20
            row[f"{kind}_needs"] = needed_inflation(shape[0], declared, size)
            features.unlink()
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def kddcup_npy(folder: Path) -> Path | None:
    """KDDCUP's 494,021 rows as an uncompressed .npy (the .npz inflates 205:1, past extract's
    own zip-bomb bound for .npz input), labels dropped."""
    source = SHARED / "kddcup99" / "kdd_cup.npz"
    if not source.is_file():
        return None
    with np.load(source) as archive:
        table = archive["kdd"]
    path = folder / "kddcup_494k.npy"
    np.save(path, table[:, :-1].astype(np.float32))
    return path


# --------------------------------------------------------------------------- 3. worst
def worst(folder: Path, cases: int | None, widths: tuple) -> list[dict]:
    import crafted
    from helpers import CHILD_ENV, cli

    base = crafted.build_base(folder, cli, epochs=10, widths=widths)
    out = []
    for name, args, made in crafted.worst_cases(base, folder)[:cases]:
        result = crafted.measured(args, folder, env=CHILD_ENV)
        out.append({"case": name, "code": result["code"], "file_mb": made.stat().st_size / 1e6,
                    "wall_s": result["seconds"], "cpu_s": result["cpu_seconds"], "peak_mib": result["peak_mib"],
                    "error": result["err"].strip()[:200]})
        print(json.dumps(out[-1]), flush=True)
    return out


# --------------------------------------------------------------------------- report
# section -> (title, columns, the cells of one result)
TABLES = {
    "throughput": ("1. Scoring throughput (default score, 2,000 reference rows)",
                   ["columns", "threads", "rows scored", "rows/s (CPU)", "rows/s (wall)", "CPU s", "wall s"],
                   lambda r: [str(r["width"]), str(r["threads"]), f"{r['rows']:,}", f"{r['rows_per_s_cpu']:,.0f}",
                              f"{r['rows_per_s_wall']:,.0f}", f"{r['cpu_s']:.2f}", f"{r['wall_s']:.2f}"]),
    "ratios": ("2. What `extract --compress` gives on real data, and what DEEPUAD_MAX_INFLATION a file needs "
               "(- none; X counted as its bytes or 160 bytes a row, whichever is more)",
               ["data", "rows", "columns", "X MiB", "X declared / stored", "file MiB", "X declared / file size",
                "needs (compressed)", "plain file MiB", "needs (plain)"],
               lambda r: [r["data"], f"{r['rows']:,}", f"{r['width']:,}", f"{r['X_mib']:.1f}", f"{r['X_ratio']:.1f}",
                          f"{r['file_mib']:.2f}", f"{r['file_ratio']:.1f}", str(r["compressed_needs"] or "-"),
                          f"{r['plain_file_mib']:.2f}", str(r["plain_needs"] or "-")]),
    "worst": ("3. The worst files under 10 MB (tests/crafted.py), each command in a fresh process",
              ["case", "exit", "file MB", "wall s", "CPU s", "peak RSS MiB"],
              lambda r: [r["case"], str(r["code"]), f"{r['file_mb']:.3f}", f"{r['wall_s']:.2f}", f"{r['cpu_s']:.2f}",
                         f"{r['peak_mib']:.0f}"]),
}


def report(path: Path, sections: dict, machine: dict, loads: dict, command: str, minutes: float) -> None:
    lines = ["# What a crafted artifact under 10 MB costs (bench/crafted_cost.py)", "",
             f"Machine: `nproc` = {machine['nproc']}, CPU: {machine['cpu_model']}, numpy {machine['numpy']}, "
             f"torch {machine['torch']}, h5py {machine['h5py']}. Code: {git_state()['commit']}"
             f"{' with uncommitted changes' if git_state()['uncommitted_package_files'] else ''}.", "",
             f"Command: `{command}`; whole run {minutes:.1f} min. 1-min load average per section: "
             + ", ".join(f"{name} {load['mean']} (min {load['min']}, max {load['max']})" for name, load in loads.items())
             + ": on a busy machine wall times are indicative, CPU seconds (user + system) less so.", ""]
    for name, (title, header, cells) in TABLES.items():
        if name in sections:
            lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
            lines += ["| " + " | ".join(cells(row)) + " |" for row in sections[name]] + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps({"machine": machine, "loads": loads, **sections}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="throughput,ratios,worst")
    parser.add_argument("--widths", default="1,10,40,89,500", help="columns of the throughput section")
    parser.add_argument("--rows", type=int, default=200_000, help="rows scored at each width")
    parser.add_argument("--tables", default="all", help="ODDS/ADBench .npz files of ../shared/data/odds_adbench, or all")
    parser.add_argument("--no-kddcup", action="store_true", help="leave out KDDCUP's 494k rows (section 2)")
    parser.add_argument("--cases", type=int, default=None, help="only the first N worst cases (section 3)")
    parser.add_argument("--narrow", default=",".join(map(str, NARROW_WIDTHS)),
                        help="columns of the narrow models of section 3 (empty: none)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "crafted_cost.md")
    args = parser.parse_args()
    started = time.time()
    machine = machine_info("numpy", "torch", "h5py")
    sampler = LoadSampler()
    sampler.start()
    sections, loads = {}, {}
    with tempfile.TemporaryDirectory(prefix="deepuad_crafted_cost_") as work:
        folder = Path(work)
        for section in args.sections.split(","):
            t0 = time.time()
            if section == "throughput":
                sections[section] = throughput([int(w) for w in args.widths.split(",")], args.rows, folder)
            elif section == "ratios":
                odds = SHARED / "odds_adbench"
                names = sorted(p.name for p in odds.glob("*.npz")) if args.tables == "all" else args.tables.split(",")
                sources = [("KDDCUP sample (5,000 rows)", ROOT / "sample_data" / "kddcup99_5k.csv.gz",
                            ["--label-column", "label", "--anomaly-values", "normal."])]
                sources += [(name, odds / name, []) for name in names]
                kdd = None if args.no_kddcup else kddcup_npy(folder)
                if kdd is not None:
                    sources.append(("KDDCUP 10 % (kdd_cup.npz)", kdd, []))
                sections[section] = ratios(sources, folder)
            elif section == "worst":
                sections[section] = worst(folder, args.cases, tuple(int(w) for w in args.narrow.split(",") if w))
            else:
                raise SystemExit(f"unknown section {section!r}")
            loads[section] = sampler.window(t0, time.time())
    sampler.stop()
    command = "python bench/crafted_cost.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report(args.out, sections, machine, loads, command.strip(), (time.time() - started) / 60)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
