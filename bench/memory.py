"""Memory of deepuad's streaming stages on data larger than one wants in RAM.

    python bench/memory.py                              # quick: 2M-row features file (~0.9 GB), 2M-row CSV
    python bench/memory.py --rows 10000000 --csv-rows 5000000   # the committed run: 10M x 118 (~4.7 GB)

1. score: a tiny model is trained through the CLI on a small synthetic features file; a big
   features artifact (rows x 118 float32, labels y) is then written chunk by chunk with
   ``deepuad.stages.write_features`` reusing the small file's ``encoding`` (so ``score`` accepts
   it), in a subprocess whose peak RSS is measured too. Then
   ``deepuad --quiet score MODEL BIG -o BIG.scores.h5`` runs under ``/usr/bin/time -v``.
   Target: peak RSS < 1 GiB.
2. extract: a generated CSV (numeric + categorical columns, a label) is extracted with
   ``--chunk-rows 100000``: peak RSS vs file size.
3. cluster: ``deepuad --quiet cluster BIG --fit-sample 100000`` (streams X from HDF5).

Every command is a fresh process run under ``/usr/bin/time -v`` (peak RSS = "Maximum resident
set size"); its RSS is also sampled from /proc every 0.5 s to show when the peak happens.
Files go to ``--workdir`` (default <temp folder>/deepuad_bench_memory) and are deleted at the end
unless ``--keep``. Writes bench/results/memory.md and memory.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LoadSampler, git_state, machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 118
GIB = 1 << 30


# --------------------------------------------------------------------------- data generators


def synthetic_chunk(rng: np.random.Generator, rows: int, centers: np.ndarray, preferred: np.ndarray):
    """rows x 118 in [0, 1] (38 numeric columns around 6 centres, 4 one-hot blocks of 20) and
    int8 labels with 5 % uniform anomalies."""
    y = (rng.random(rows) < 0.05).astype(np.int8)
    cluster = rng.integers(0, len(centers), rows)
    X = np.zeros((rows, WIDTH), dtype=np.float32)
    numeric = centers[cluster] + rng.normal(0, 0.03, size=(rows, 38)).astype(np.float32)
    anomalous = y == 1
    numeric[anomalous] = rng.random((int(anomalous.sum()), 38), dtype=np.float32)
    X[:, :38] = np.clip(numeric, 0, 1)
    for g in range(4):
        cat = np.where(rng.random(rows) < 0.9, preferred[cluster, g], rng.integers(0, 20, rows))
        cat[anomalous] = rng.integers(0, 20, int(anomalous.sum()))
        X[np.arange(rows), 38 + 20 * g + cat] = 1.0
    return X, y


def generator_state(seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0.2, 0.8, size=(6, 38)).astype(np.float32)
    preferred = rng.integers(0, 20, size=(6, 4))
    return rng, centers, preferred


def write_big_features(small: Path, big: Path, rows: int, chunk: int = 100_000) -> dict:
    """The big artifact, streamed: never more than one chunk in memory (runs in a subprocess)."""
    from deepuad import artifacts as art
    from deepuad.artifacts.features import write_features

    with art.open_artifact(small, "features") as f:
        encoding = art.read_json(f, "encoding")
        params = art.params_of(f)
    rng, centers, preferred = generator_state(1)

    def chunks():
        for start in range(0, rows, chunk):
            yield synthetic_chunk(rng, min(chunk, rows - start), centers, preferred)

    inputs = {"raw": {"path": f"synthetic:{rows}x{WIDTH}", "sha256": "synthetic"}}
    return write_features(big, chunks(), encoding, params, inputs)


def write_csv(path: Path, rows: int, chunk: int = 500_000, seed: int = 0) -> None:
    """A KDD-like table: 11 numeric columns (ints and decimals), 3 text columns (3, 60 and 11
    values), a text label (5 % 'attack'); about 90 bytes a row."""
    rng = np.random.default_rng(seed)
    protocols = np.array(["tcp", "udp", "icmp"])
    services = np.array([f"svc_{i:02d}" for i in range(60)])
    flags = np.array(["SF", "S0", "REJ", "RSTR", "RSTO", "SH", "S1", "S2", "S3", "OTH", "RSTOS0"])
    with open(path, "w") as out:
        out.write("duration,protocol,service,flag,src_bytes,dst_bytes,count,srv_count,serror_rate,same_srv_rate,"
                  "mean_iat,std_iat,mean_len,std_len,label\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            cols = [
                rng.integers(0, 5000, n).astype(str),
                protocols[rng.integers(0, 3, n)],
                services[rng.zipf(1.6, n) % 60],
                flags[rng.integers(0, 11, n)],
                rng.integers(0, 10**6, n).astype(str),
                rng.integers(0, 10**5, n).astype(str),
                rng.integers(0, 512, n).astype(str),
                rng.integers(0, 512, n).astype(str),
                np.char.mod("%.2f", rng.random(n)),
                np.char.mod("%.2f", rng.random(n)),
                *(np.char.mod("%.4f", rng.random(n) * 10) for _ in range(4)),
                np.where(rng.random(n) < 0.05, "attack", "normal"),
            ]
            lines = cols[0]
            for c in cols[1:]:
                lines = np.char.add(np.char.add(lines, ","), c)
            out.write("\n".join(lines.tolist()))
            out.write("\n")


def write_parquet(path: Path, rows: int, chunk: int = 500_000, seed: int = 0) -> None:
    """The same KDD-like table as ``write_csv``, as Parquet (typed columns: ints, doubles, the three
    text columns dictionary-encoded, a string label), one row group per ``chunk`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    protocols = np.array(["tcp", "udp", "icmp"])
    services = np.array([f"svc_{i:02d}" for i in range(60)])
    flags = np.array(["SF", "S0", "REJ", "RSTR", "RSTO", "SH", "S1", "S2", "S3", "OTH", "RSTOS0"])
    writer = None
    try:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            columns = {
                "duration": rng.integers(0, 5000, n),
                "protocol": pa.array(protocols[rng.integers(0, 3, n)]).dictionary_encode(),
                "service": pa.array(services[rng.zipf(1.6, n) % 60]).dictionary_encode(),
                "flag": pa.array(flags[rng.integers(0, 11, n)]).dictionary_encode(),
                "src_bytes": rng.integers(0, 10**6, n), "dst_bytes": rng.integers(0, 10**5, n),
                "count": rng.integers(0, 512, n), "srv_count": rng.integers(0, 512, n),
                "serror_rate": np.round(rng.random(n), 2), "same_srv_rate": np.round(rng.random(n), 2),
                **{name: np.round(rng.random(n) * 10, 4) for name in ("mean_iat", "std_iat", "mean_len", "std_len")},
                "label": np.where(rng.random(n) < 0.05, "attack", "normal"),
            }
            table = pa.table(columns)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=chunk)
    finally:
        if writer is not None:
            writer.close()


# --------------------------------------------------------------------------- measuring


LOAD = LoadSampler()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def measured(command: list[str], shown: str, timeout: float | None = None, env: dict | None = None, cwd: Path | None = None) -> dict:
    """Run ``command`` under /usr/bin/time -v; peak RSS, wall, CPU, and an RSS timeline."""
    timed = ["/usr/bin/time", "-v", *command]
    print(f"$ {shown}", flush=True)
    t0 = time.time()
    proc = subprocess.Popen(timed, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd or ROOT,
                            env={**os.environ, **(env or {})})
    timeline: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            kids = _children(proc.pid)
            if kids:
                rss = _rss_mib(kids[0])
                if rss is not None:
                    timeline.append((round(time.time() - t0, 1), round(rss, 1)))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        for kid in _children(proc.pid):  # the python process started under time(1), by its id
            os.kill(kid, 9)
        out, err = proc.communicate()
    stop.set()
    sampler.join()
    wall = time.time() - t0
    stats = {}
    for key, pattern in (("max_rss_kib", r"Maximum resident set size \(kbytes\): (\d+)"),
                         ("user_s", r"User time \(seconds\): ([\d.]+)"), ("sys_s", r"System time \(seconds\): ([\d.]+)"),
                         ("exit", r"Exit status: (\d+)")):
        match = re.search(pattern, err)
        stats[key] = float(match.group(1)) if match else None
    peak = stats["max_rss_kib"] / 1024 if stats["max_rss_kib"] else None
    peak_at = max(timeline, key=lambda p: p[1])[0] if timeline else None
    result = {"command": shown, "wall_s": round(wall, 1), "peak_rss_mib": None if peak is None else round(peak, 1),
              "user_s": stats["user_s"], "sys_s": stats["sys_s"], "exit": stats["exit"], "timed_out": timed_out,
              "peak_sampled_at_s": peak_at, "rss_timeline": timeline[:: max(1, len(timeline) // 60)],
              "load": LOAD.window(t0, time.time())}
    if proc.returncode != 0 and not timed_out:
        tail = "\n".join(line for line in err.splitlines() if not line.startswith("\t"))[-2000:]
        result["error"] = tail
        print(f"  FAILED: {tail}", flush=True)
    else:
        try:
            result["summary"] = json.loads(out) if out.strip().startswith("{") else None
        except json.JSONDecodeError:
            result["summary"] = None
    print(f"  wall {result['wall_s']} s, peak RSS {result['peak_rss_mib']} MiB, load {result['load']}", flush=True)
    return result


def compare_runs(R: dict, key: str, first: dict, command: list[str], shown: str, args, cleanup=None) -> None:
    """Re-run ``command`` alternately with the repository's deepuad and the patched copy
    (``--compare-pythonpath``); ``first`` is the repository run already made."""
    other = args.compare_pythonpath.resolve()
    R.setdefault("compare", {})[key] = {"pythonpath": str(other), "command": shown, "repository": [first], "patched": []}
    for rep in range(args.compare_reps):
        for name in (("patched", "repository") if rep % 2 == 0 else ("repository", "patched")):
            if name == "repository" and rep == 0:
                continue  # the run already made is the first repository run
            cwd = other if name == "patched" else ROOT  # '' (the cwd) comes first on sys.path
            env = {"PYTHONPATH": str(other)} if name == "patched" else {}
            R["compare"][key][name].append(measured(command, f"{shown}   # deepuad from {cwd}", env=env, cwd=cwd))
            if cleanup:
                cleanup()


def deepuad_cmd(*args) -> tuple[list[str], str]:
    args = [str(a) for a in args]
    return [sys.executable, "-m", "deepuad", *args], "deepuad " + " ".join(shlex.quote(a) for a in args)


# --------------------------------------------------------------------------- report


def same_summary(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if set(a) != set(b):
        return False
    for k in a:
        if k == "output":
            continue
        x, y = a[k], b[k]
        if isinstance(x, float) and isinstance(y, float):
            if abs(x - y) > 1e-12 * max(1.0, abs(x)):
                return False
        elif x != y:
            return False
    return True


def mib(x):
    return "n/a" if x is None else f"{x:,.0f}"


def write_markdown(path: Path, R: dict) -> None:
    m = R["machine"]
    L = ["# deepuad memory on large inputs (bench/memory.py)\n"]
    L.append(f"Machine: `nproc` = {m['nproc']}, CPU: {m['cpu_model']}, {m['mem_total_mib']:,} MiB RAM, no swap; Python "
             f"{m['python']}, torch {m['torch']}, h5py {m['h5py']}, numpy {m['numpy']}, pandas {m['pandas']}. Shared with other "
             f"processes: 1-min load average {m['loadavg_start'][0]:.2f} at start, mean {R['load_overall']['mean']} "
             f"(min {R['load_overall']['min']}, max {R['load_overall']['max']}) over the run, so wall times are indicative; "
             "peak RSS does not depend on the load.\n")
    L.append(f"Command: `{R['command']}` (repository root, venv active); whole run {R['run_seconds'] / 60:.1f} min. "
             "Each measured command is a fresh process under `/usr/bin/time -v`; peak RSS = its 'Maximum resident set size' "
             "(the page cache that HDF5/CSV reads fill is not RSS). 'Peak at' = when the 0.5 s RSS samples peaked.\n")
    g = R.get("git")
    if g:
        L.append(f"Code measured: commit {g.get('commit')} ({g.get('subject')})"
                 + (f" plus uncommitted changes to {', '.join(g['uncommitted_package_files'])}" if g.get("uncommitted_package_files") else "")
                 + ".\n")
    L.append("## Results\n")
    L.append("| stage | input | rows | input size | peak RSS MiB | target | met | wall s | CPU s (user+sys) | peak at s | load |")
    L.append("|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|")
    for key, label, target in (("write_big", "write_features (synthetic chunks of 100k rows)", None),
                               ("score", "`score` (streamed)", GIB),
                               ("extract", "`extract --chunk-rows 100000`", None),
                               ("extract_parquet", "`extract --chunk-rows 100000` (Parquet)", None),
                               ("cluster", "`cluster --fit-sample 100000` (streamed)", None)):
        r = R.get(key)
        if not r:
            continue
        met = "" if target is None or r["peak_rss_mib"] is None else ("yes" if r["peak_rss_mib"] * (1 << 20) < target else "**no**")
        status = " (timed out)" if r.get("timed_out") else (" (failed)" if r.get("error") else "")
        cpu = (r["user_s"] or 0) + (r["sys_s"] or 0)
        L.append(f"| {label}{status} | {r['input']} | {r['rows']:,} | {r['input_bytes'] / GIB:.2f} GiB | {mib(r['peak_rss_mib'])} | "
                 f"{'< 1 GiB' if target else '-'} | {met or '-'} | {r['wall_s']:.0f} | {cpu:.0f} | {r['peak_sampled_at_s']} | "
                 f"{r['load']['mean']} |")
    L.append("")
    s = R.get("startup")
    if s:
        L.append("Start-up, before any data is read: " + "; ".join(
            f"`{v['command']}` {v['wall_s']:.1f} s, peak RSS {mib(v['peak_rss_mib'])} MiB" for v in s.values()) + ".\n")
    for key, c in (R.get("compare") or {}).items():
        L.append(f"### {key}: repository vs patched copy (`{c['pythonpath']}`; what the patch is: see Notes)\n")
        L.append(f"`{c['command']}`, runs alternated. 'Same summary': the command's JSON summary equals the first repository "
                 "run's (numbers to a relative 1e-12; paths excluded).\n")
        L.append("| deepuad | peak RSS MiB per run | wall s per run | same summary | load |")
        L.append("|---|---|---|---|---:|")
        ref = c["repository"][0].get("summary")
        for name in ("repository", "patched"):
            runs = c[name]
            walls = ", ".join(f"{x['wall_s']:.1f}" for x in runs)
            same = all(same_summary(ref, x.get("summary")) for x in runs)
            L.append(f"| {name} | {', '.join(mib(x['peak_rss_mib']) for x in runs)} | {walls} | "
                     f"{same} | {', '.join(str(x['load']['mean']) for x in runs)} |")
        L.append("")
    if R.get("baseline_rss"):
        L.append(f"For scale: `python -c 'import deepuad.stages, torch, sklearn, h5py'` alone peaks at "
                 f"{R['baseline_rss']['peak_rss_mib']:.0f} MiB.\n")
    L.append("## Commands\n")
    L.append("```")
    for key in ("small", "write_big", "score", "csv", "extract", "cluster", "parquet", "extract_parquet"):
        r = R.get(key)
        if not r:
            continue
        for line in (r if isinstance(r, list) else [r]):
            L.append(f"{line['command']}    # {line.get('wall_s', '')} s")
    L.append("```\n")
    for key, title in (("score", "score"), ("extract", "extract"), ("cluster", "cluster")):
        r = R.get(key)
        if r and r.get("rss_timeline"):
            points = r["rss_timeline"]
            step = max(1, len(points) // 12)
            L.append(f"RSS over time, {title} (s: MiB): " + ", ".join(f"{t:.0f}: {v:.0f}" for t, v in points[::step]) + "\n")
    p = R.get("parquet_run")
    if p:
        L.append(f"The Parquet row was measured in a separate run on {p['date']}: `{p['command']}` (whole run "
                 f"{p['run_seconds'] / 60:.1f} min; 1-min load average {p['loadavg_start'][0]:.2f} at start, mean {p['load']['mean']}"
                 f"; pyarrow {p['pyarrow']}; commit {p['git'].get('commit')}), merged into the earlier run's results.\n")
    if R.get("notes"):
        L.append("## Notes\n")
        L.extend(f"- {n}" for n in R["notes"])
        L.append("")
    path.write_text("\n".join(L))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the big features file (committed run: 10000000)")
    parser.add_argument("--csv-rows", type=int, default=2_000_000, help="rows of the generated CSV for extract")
    parser.add_argument("--small-rows", type=int, default=20_000)
    parser.add_argument("--fit-sample", type=int, default=100_000)
    parser.add_argument("--sections", default="startup,score,extract,cluster",
                        help="comma-separated; 'parquet' (extract from a Parquet file of --csv-rows rows) is measured "
                             "alone and merged into the existing --out results")
    parser.add_argument("--cluster-timeout", type=float, default=3600)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "deepuad_bench_memory")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "memory.md")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--compare-pythonpath", type=Path, default=None,
                        help="also run score with deepuad imported from this folder (a patched copy of the repository), "
                             "alternating with the repository's own, --compare-reps times each")
    parser.add_argument("--compare-reps", type=int, default=2)
    parser.add_argument("--from-json", type=Path, default=None, help="only re-write the Markdown from this memory.json (no measuring)")
    parser.add_argument("--note", action="append", default=[], help="a Markdown line for the Notes section (stored in the JSON)")
    parser.add_argument("--clear-notes", action="store_true", help="with --from-json: drop the stored notes first")
    parser.add_argument("--write-big", nargs=3, metavar=("SMALL", "BIG", "ROWS"), help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.write_big:
        small, big, rows = args.write_big
        print(json.dumps(write_big_features(Path(small), Path(big), int(rows))))
        return

    if args.from_json:
        R = json.loads(args.from_json.read_text())
        R["notes"] = ([] if args.clear_notes else R.get("notes", [])) + args.note
        args.from_json.write_text(json.dumps(R, indent=2, default=str))
        write_markdown(args.out, R)
        print(f"wrote {args.out} from {args.from_json}")
        return
    sections = set(args.sections.split(","))
    if sections == {"parquet"}:
        measure_parquet(args)
        return
    LOAD.start()
    run_start = time.time()
    R: dict = {"command": "python bench/memory.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]), "machine": machine_info("torch", "numpy", "h5py", "pandas"), "git": git_state(),
               "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "notes": list(args.note)}
    work = args.workdir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        R["baseline_rss"] = measured([sys.executable, "-c", "import deepuad.stages, torch, sklearn, h5py"],
                                     "python -c 'import deepuad.stages, torch, sklearn, h5py'")
        big = work / "big.features.h5"
        if sections & {"score", "cluster", "startup"}:
            # a small features file + tiny model through the CLI
            rng, centers, preferred = generator_state(1)
            X, y = synthetic_chunk(rng, args.small_rows, centers, preferred)
            np.savez(work / "small.npz", X=X, y=y)
            small, clusters, model = work / "small.features.h5", work / "small.clusters.h5", work / "small.model.h5"
            R["small"] = []
            for step in (("extract", work / "small.npz", "-o", small), ("cluster", small, "-o", clusters),
                         ("train", small, clusters, "-o", model, "--epochs", "2", "--json")):
                command, shown = deepuad_cmd(*step)
                t0 = time.time()
                subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
                R["small"].append({"command": shown, "wall_s": round(time.time() - t0, 1)})
            if "startup" in sections:  # what every command pays before it reads anything
                R["startup"] = {}
                for label, step in (("--help", ("--help",)), ("inspect", ("inspect", small, "--json"))):
                    command, shown = deepuad_cmd(*step)
                    r = measured(command, shown)
                    R["startup"][label] = r
                    if args.compare_pythonpath:
                        compare_runs(R, f"startup {label}", r, command, shown, args)
            # the big file, streamed, in its own measured process
            command = [sys.executable, str(Path(__file__).resolve()), "--write-big", str(small), str(big), str(args.rows)]
            r = measured(command, f"python bench/memory.py --write-big {small} {big} {args.rows}   "
                         "# write_features(big, synthetic chunks, encoding of small, ...)")
            r.update(input="synthetic chunks", rows=args.rows, input_bytes=args.rows * WIDTH * 4)
            r["output_bytes"] = big.stat().st_size
            R["write_big"] = r
        if "score" in sections:
            command, shown = deepuad_cmd("--quiet", "score", model, big, "-o", work / "big.scores.h5", "--json")
            r = measured(command, shown)
            r.update(input=f"features artifact {args.rows:,} x {WIDTH} float32 + y", rows=args.rows, input_bytes=big.stat().st_size)
            R["score"] = r
            (work / "big.scores.h5").unlink(missing_ok=True)
            if args.compare_pythonpath:
                compare_runs(R, "score", r, command, shown, args, lambda: (work / "big.scores.h5").unlink(missing_ok=True))
        if "cluster" in sections:
            command, shown = deepuad_cmd("--quiet", "cluster", big, "--fit-sample", args.fit_sample, "-o", work / "big.clusters.h5", "--json")
            r = measured(command, shown, timeout=args.cluster_timeout)
            r.update(input=f"features artifact {args.rows:,} x {WIDTH} float32 + y", rows=args.rows, input_bytes=big.stat().st_size)
            R["cluster"] = r
        if not args.keep:
            big.unlink(missing_ok=True)  # 4.7 GB at 10M rows: gone before the CSV is written
        if "extract" in sections:
            csv = work / "big.csv"
            t0 = time.time()
            write_csv(csv, args.csv_rows)
            R["csv"] = {"command": f"(generated) {csv}: {args.csv_rows:,} rows, 11 numeric + 3 text columns + label",
                        "wall_s": round(time.time() - t0, 1), "bytes": csv.stat().st_size}
            command, shown = deepuad_cmd("--quiet", "extract", csv, "--label-column", "label", "--anomaly-values", "attack",
                                         "--chunk-rows", "100000", "-o", work / "big_csv.features.h5", "--json")
            r = measured(command, shown)
            r.update(input="CSV, 11 numeric + 3 text columns (3/60/11 values) + label", rows=args.csv_rows,
                     input_bytes=csv.stat().st_size)
            if (work / "big_csv.features.h5").exists():
                r["output_bytes"] = (work / "big_csv.features.h5").stat().st_size
            R["extract"] = r
            (work / "big_csv.features.h5").unlink(missing_ok=True)
            if args.compare_pythonpath:
                compare_runs(R, "extract", r, command, shown, args, lambda: (work / "big_csv.features.h5").unlink(missing_ok=True))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    LOAD.stop()
    R["run_seconds"] = time.time() - run_start
    R["load_overall"] = LOAD.window(run_start, time.time())
    R["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(R, indent=2, default=str))
    write_markdown(args.out, R)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


def measure_parquet(args) -> None:
    """extract from a --csv-rows Parquet file (row groups of 500,000 rows), merged into --out."""
    import datetime

    import pyarrow

    LOAD.start()
    run_start, load_start = time.time(), os.getloadavg()
    json_path = args.out.with_suffix(".json")
    R = json.loads(json_path.read_text()) if json_path.exists() else {"machine": machine_info("torch", "numpy", "h5py", "pandas")}
    work = args.workdir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        source = work / "big.parquet"
        t0 = time.time()
        write_parquet(source, args.csv_rows)
        R["parquet"] = {"command": f"(generated) {source.name}: {args.csv_rows:,} rows, the CSV's columns typed, "
                        "row groups of 500,000 rows", "wall_s": round(time.time() - t0, 1), "bytes": source.stat().st_size}
        command, shown = deepuad_cmd("--quiet", "extract", source, "--label-column", "label", "--anomaly-values", "attack",
                                     "--chunk-rows", "100000", "-o", work / "big_parquet.features.h5", "--json")
        r = measured(command, shown)
        r.update(input="Parquet, the same 11 numeric + 3 dictionary text columns + label", rows=args.csv_rows,
                 input_bytes=source.stat().st_size)
        if (work / "big_parquet.features.h5").exists():
            r["output_bytes"] = (work / "big_parquet.features.h5").stat().st_size
        R["extract_parquet"] = r
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    LOAD.stop()
    R["parquet_run"] = {"command": "python bench/memory.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                        "date": datetime.date.today().isoformat(), "run_seconds": time.time() - run_start,
                        "load": LOAD.window(run_start, time.time()), "loadavg_start": load_start, "git": git_state(),
                        "pyarrow": pyarrow.__version__}
    json_path.write_text(json.dumps(R, indent=2, default=str))
    write_markdown(args.out, R)
    print(f"wrote {args.out} and {json_path}")


if __name__ == "__main__":
    main()
