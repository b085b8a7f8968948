"""Speed of deepuad's training on a KDDCUP99-sized workload, as ratios against references
measured in the same run, interleaved, median of ``--reps`` repetitions.

    python bench/speed.py                      # default run (10 epochs, 3 reps; ~15 min on 2 shared cores)
    python bench/speed.py --epochs 200         # the full budget (PyOD alone: ~15 s/epoch x 200 x reps)

Workload: the train half of KDDCUP99 10 % made by bench/kddcup.py's split (contamination 0.2,
seed 0: 247,010 rows x 118 float32 columns after ``extract``), or ``--data synthetic`` (same
shape, Gaussian clusters + one-hot blocks). Net 118-60-30-10 mirrored, tanh, batch 1024,
Adam 1e-3, r = 10, p0 = 35, p = 30, percentile over samples (the CLI defaults). Threads: what
``deepuad.stages._common.set_threads(None)`` picks on this machine (1 on <= 2 cores) for sections 1-3.

1. epoch: ``DeepUAD._train_one_epoch`` vs a bare in-memory PyTorch loop (same net, same rows,
   randperm + index + forward/backward/step). Target: throughput >= 0.8 x the bare loop.
2. fit: ``DeepUAD.fit`` (initial selection given, re-selection every r epochs) vs PyOD's
   AutoEncoder with the same net widths/activation, epochs, batch size, lr, no batch norm,
   no dropout, no weight decay, no preprocessing. Target: deepuad <= 0.5 x PyOD wall time.
3. re-selection: its cost (timed inside the fits above) and share of training time; the same
   re-selection with ``reselect_fit_sample`` caps on the same z (a snapshot of the detector
   taken just before the first re-selection), and the Jaccard index of the selected sets.
4. threads: one training step with torch threads 1 and 2, with and without a competing busy
   process (``python -c "while True: pass"``, started and killed here).
5. epochs to convergence: the CLI on sample_data/kddcup99_5k.csv.gz (200-epoch budget).
6. pipeline (``--sections pipeline``, not in the default list: about 5 min a repetition): the
   default ``deepuad cluster``, ``train --threads 1`` and ``score --threads 1`` on the features
   file, as a user runs them (three processes, imports included), vs PyOD's AutoEncoder fitted
   for 20 epochs in this process (the net of section 2, 1 thread, imports not counted).
   Target: deepuad <= 1.0 x PyOD.

Writes bench/results/speed.md and speed.json (``--out``). Temporary files go to ``--workdir``
(default <temp folder>/deepuad_bench_speed), removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LoadSampler, git_state, machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- helpers


def portable(text: str) -> str:
    """Paths in what the results record, relative to the repository (its data is ../shared/data)
    and with the temporary folder named as such: no path of the machine that ran it."""
    return (text.replace(str(ROOT) + os.sep, "").replace(str(ROOT.parent), "..")
            .replace(tempfile.gettempdir(), "<temp folder>"))


def median(values):
    return float(statistics.median(values))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - inter
    return inter / union if union else 1.0


def supports(name: str) -> bool:
    """Whether this deepuad's DeepUAD takes parameter ``name`` (the package evolves under the benchmark)."""
    import inspect

    from deepuad.estimators.detector import DeepUAD

    return name in inspect.signature(DeepUAD.__init__).parameters


# the paper's re-selection with the GMM fitted on ALL rows (the default since 2026-11-28 fits it on 20k rows)
GMM_RULE = {"reselect_by": "variance", "reselect_fit_sample": None}


# --------------------------------------------------------------------------- data


def synthetic(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """rows x 118 in [0, 1]: 38 numeric columns from 6 tight Gaussian clusters plus 4 one-hot
    blocks of 20 columns (cluster-dependent categories); 20 % uniform anomalies."""
    rng = np.random.default_rng(seed)
    n_anom = rows // 5
    y = np.zeros(rows, dtype=np.int8)
    y[rng.choice(rows, n_anom, replace=False)] = 1
    centers = rng.uniform(0.2, 0.8, size=(6, 38))
    cluster = rng.integers(0, 6, rows)
    numeric = centers[cluster] + rng.normal(0, 0.03, size=(rows, 38))
    numeric[y == 1] = rng.uniform(0, 1, size=(n_anom, 38))
    X = np.zeros((rows, 118), dtype=np.float32)
    X[:, :38] = np.clip(numeric, 0, 1)
    preferred = rng.integers(0, 20, size=(6, 4))
    for g in range(4):
        cat = np.where(rng.random(rows) < 0.9, preferred[cluster, g], rng.integers(0, 20, rows))
        cat[y == 1] = rng.integers(0, 20, n_anom)
        X[np.arange(rows), 38 + 20 * g + cat] = 1.0
    return X, y


def prepare_data(args, work: Path) -> dict:
    """Features file (via deepuad's extract, as a user would) and the initial selection."""
    from deepuad.artifacts.features import read_features
    from deepuad.stages.extract import extract
    from deepuad.estimators.detector import initial_selection

    features = work / "train.features.h5"
    info: dict = {}
    if args.data == "kdd":
        import kddcup

        started = time.perf_counter()
        info["split"] = kddcup.make_split(Path(args.kdd_data), work, 0.2, 0, args.limit)
        extract(work / "train.csv", features, label_column="label", anomaly_values=["normal."])
        info["source"] = f"KDDCUP99 10% train half (bench/kddcup.py split, contamination 0.2, seed 0, limit {args.limit})"
    else:
        started = time.perf_counter()
        X, y = synthetic(args.rows)
        np.savez(work / "synthetic.npz", X=X, y=y)
        extract(work / "synthetic.npz", features)
        info["source"] = f"synthetic {args.rows} x 118 (6 Gaussian clusters + 4 one-hot blocks, 20 % uniform anomalies)"
    info["extract_seconds"] = round(time.perf_counter() - started, 1)
    loaded = read_features(features)
    X, y = loaded["X"], loaded["y"]
    started = time.perf_counter()
    initial = initial_selection(X, args.p0, "gmm", 20, "samples", 0.01, 0).selected
    info["initial_clustering_seconds"] = round(time.perf_counter() - started, 1)
    info.update(rows=int(X.shape[0]), columns=int(X.shape[1]), initial_selected=int(len(initial)),
                anomaly_share=None if y is None else float(np.mean(y)))
    return {"X": X, "y": y, "initial": initial, "info": info}


# --------------------------------------------------------------------------- timing instrumentation


class Timeline:
    """Wraps the functions a re-selection calls (in deepuad.estimators.detector, .rules and .clustering) to time its phases."""

    def __init__(self):
        self.events: list[tuple[str, float, float]] = []

    def wrap(self, module, name):
        original = getattr(module, name)

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                self.events.append((name, t0, time.perf_counter()))

        setattr(module, name, timed)

    def between(self, t0, t1) -> dict:
        out: dict[str, float] = {}
        for name, a, b in self.events:
            if t0 <= a and b <= t1:
                out[name] = out.get(name, 0.0) + (b - a)
        return {k: round(v, 3) for k, v in out.items()}


# --------------------------------------------------------------------------- sections


def section_epoch(data, args, threads) -> dict:
    """1. deepuad's _train_one_epoch vs a bare in-memory loop on the same rows."""
    import torch

    from deepuad.estimators.autoencoder import Autoencoder
    from deepuad.estimators.detector import DeepUAD

    X, initial = data["X"], data["initial"]
    Xt = torch.from_numpy(X)
    det = DeepUAD(p0=args.p0, p=30, r=args.r, epochs=0, batch_size=1024, lr=1e-3, layers=(60, 30, 10), activation="tanh", seed=0)
    det.fit(X, initial=initial)  # epochs=0: starts the detector and runs _train's setup, trains nothing
    torch.manual_seed(0)
    model = Autoencoder(X.shape[1], (60, 30, 10), "tanh")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xs = Xt[torch.from_numpy(initial)].contiguous()  # the same rows, pre-gathered
    generator = torch.Generator().manual_seed(0)

    def bare_epoch():
        order = torch.randperm(len(Xs), generator=generator)
        for start in range(0, len(Xs), 1024):
            batch = Xs[order[start : start + 1024]]
            loss = torch.nn.functional.mse_loss(model(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def deepuad_epoch():
        det._train_one_epoch(Xt)

    runners = {"deepuad": deepuad_epoch, "bare": bare_epoch}
    for run in runners.values():  # warm-up (allocator, first-touch), not timed
        run()
    times: dict[str, list[float]] = {"deepuad": [], "bare": []}
    ratios = []
    for rep in range(args.reps):
        order = ["deepuad", "bare"] if rep % 2 == 0 else ["bare", "deepuad"]
        for name in order:
            t0 = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - t0)
        ratios.append(times["bare"][-1] / times["deepuad"][-1])
    return {"rows_per_epoch": int(len(det.selected_)), "threads": threads, "seconds": times,
            "deepuad_s_per_epoch": median(times["deepuad"]), "bare_s_per_epoch": median(times["bare"]),
            "throughput_ratio_per_rep": ratios, "throughput_ratio": median(ratios), "target": 0.8,
            "met": median(ratios) >= 0.8}


def section_fit(data, args, timeline) -> dict:
    """2. + 3. deepuad fit (timed re-selections) vs PyOD, interleaved; snapshot for the caps."""

    from deepuad.estimators.detector import DeepUAD

    X, initial = data["X"], data["initial"]
    variants = {"deepuad": {}}
    if supports("reselect_by"):  # the default rule (see DeepUAD) + the paper's GMM rule fitted on all rows
        variants["deepuad_gmm"] = dict(GMM_RULE)
    gmm_variant = "deepuad_gmm" if "deepuad_gmm" in variants else "deepuad"
    result: dict = {"epochs": args.epochs, "r": args.r, "variants": {k: v for k, v in variants.items()}, "gmm_variant": gmm_variant,
                    "pyod": [], **{k: [] for k in variants}, **{f"ratio_per_rep_{k}": [] for k in variants}}
    snapshot: dict = {}

    def fit_deepuad(rep: int, name: str) -> dict:
        take_snapshot = rep == 0 and name == gmm_variant
        marks: dict = {"epoch": {}, "reselect": {}}
        snap_seconds = 0.0

        def callback(event, det, info):
            nonlocal snap_seconds
            now = time.perf_counter()
            if event == "epoch":
                marks["epoch"][info["epoch"]] = now
                if take_snapshot and info["epoch"] == args.r and "detector" not in snapshot:
                    snapshot["detector"] = copy.deepcopy(det)  # state right before the first re-selection
                    snap_seconds = time.perf_counter() - now
                    marks["epoch"][info["epoch"]] = time.perf_counter()
            else:
                marks["reselect"][det.epoch_] = now

        det = DeepUAD(p0=args.p0, p=30, r=args.r, epochs=args.epochs, batch_size=1024, lr=1e-3, layers=(60, 30, 10),
                      activation="tanh", percentile_over="samples", seed=0, **variants[name])
        cpu0, t0 = time.process_time(), time.perf_counter()
        det.fit(X, initial=initial, callback=callback)
        wall = time.perf_counter() - t0 - snap_seconds
        cpu = time.process_time() - cpu0
        reselects = []
        for epoch, t_end in sorted(marks["reselect"].items()):
            t_start = marks["epoch"][epoch]
            reselects.append({"epoch": epoch, "seconds": round(t_end - t_start, 3), "phases": timeline.between(t_start, t_end)})
        reselect_total = sum(r["seconds"] for r in reselects)
        if take_snapshot:
            snapshot["uncapped_selected"] = det.iterations_[1].selected if len(det.iterations_) > 1 else None
        selections = [it.selected for it in det.iterations_[1:]]
        return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "epochs_run": det.epoch_, "stop_reason": det.stop_reason_,
                "reselections": reselects, "reselect_total_s": round(reselect_total, 2),
                "train_epochs_s": round(wall - reselect_total, 2), "selected_sizes": [len(s) for s in selections],
                "first_selection_hash": hash(selections[0].tobytes()) if selections else None}

    from pyod.models.auto_encoder import AutoEncoder  # imported before timing (numba etc. load once)

    def fit_pyod(rep: int) -> dict:
        ae = AutoEncoder(contamination=0.2, preprocessing=False, lr=1e-3, epoch_num=args.epochs, batch_size=1024, device="cpu",
                         random_state=0, verbose=0, optimizer_params={"weight_decay": 0.0}, hidden_neuron_list=[60, 30, 10],
                         hidden_activation_name="tanh", batch_norm=False, dropout_rate=0.0)
        cpu0, t0 = time.process_time(), time.perf_counter()
        ae.fit(X)
        return {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - cpu0, 2)}

    names = [*variants, "pyod"]
    for rep in range(args.reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.time()
            record = fit_pyod(rep) if name == "pyod" else fit_deepuad(rep, name)
            record["load"] = LOAD.window(t0, time.time())
            result[name].append(record)
            print(f"  fit rep {rep} {name}: {json.dumps(record)[:300]}", flush=True)
        for name in variants:
            result[f"ratio_per_rep_{name}"].append(result[name][-1]["wall_s"] / result["pyod"][-1]["wall_s"])
    result["pyod_wall_s"] = median([r["wall_s"] for r in result["pyod"]])
    result["target"] = 0.5
    for name in variants:
        result[f"{name}_wall_s"] = median([r["wall_s"] for r in result[name]])
        result[f"ratio_{name}"] = median(result[f"ratio_per_rep_{name}"])
        result[f"met_{name}"] = result[f"ratio_{name}"] <= 0.5
        hashes = {r["first_selection_hash"] for r in result[name]}
        result[f"{name}_reps_identical"] = len(hashes) == 1
        for r in result[name]:
            r.pop("first_selection_hash")
    pyod_epoch = [(r["wall_s"]) / args.epochs for r in result["pyod"]]
    result["pyod_s_per_epoch_incl_scoring"] = median(pyod_epoch)
    return result, snapshot


def section_caps(data, args, snapshot, fit_result, timeline) -> dict:
    """3. the first re-selection again from the same snapshot, GMM fitted on capped samples."""
    import torch

    if "detector" not in snapshot or snapshot.get("uncapped_selected") is None:
        return {"skipped": "no re-selection happened in the fits (epochs < r)"}
    Xt = torch.from_numpy(data["X"])
    y = data["y"]
    uncapped = snapshot["uncapped_selected"]
    fits = fit_result[fit_result["gmm_variant"]]
    uncapped_times = [r["reselections"][0]["seconds"] for r in fits]
    uncapped_phases = [r["reselections"][0]["phases"] for r in fits]
    out: dict = {"uncapped": {"seconds": uncapped_times, "median_s": median(uncapped_times), "phases": uncapped_phases,
                              "selected": int(len(uncapped)),
                              "selected_anomaly_share": None if y is None else float(np.mean(y[uncapped]))}}

    def run(cap, seed=None):
        det = copy.deepcopy(snapshot["detector"])
        det.reselect_fit_sample = cap
        if seed is not None:
            det.seed = seed  # only the re-selection GMM's seed changes (the model exists already)
        t0 = time.perf_counter()
        det._reselect(Xt)
        t1 = time.perf_counter()
        return t1 - t0, timeline.between(t0, t1), det.selected_

    caps = [c for c in args.caps if c < len(data["X"])]
    records = {cap: {"seconds": [], "phases": []} for cap in caps}
    for rep in range(args.reps):
        for cap in (caps if rep % 2 == 0 else caps[::-1]):
            seconds, phases, selected = run(cap)
            records[cap]["seconds"].append(round(seconds, 3))
            records[cap]["phases"].append(phases)
            records[cap]["selected_arr"] = selected
    for cap in caps:
        selected = records[cap].pop("selected_arr")
        records[cap].update(median_s=median(records[cap]["seconds"]), selected=int(len(selected)),
                            jaccard_vs_uncapped=round(jaccard(selected, uncapped), 4),
                            speedup_vs_uncapped=round(out["uncapped"]["median_s"] / median(records[cap]["seconds"]), 2),
                            selected_anomaly_share=None if y is None else float(np.mean(y[selected])))
        out[f"cap_{cap}"] = records[cap]
    if args.seed_baseline:
        seconds, phases, selected = run(None, seed=1)
        out["uncapped_other_seed"] = {"seconds": round(seconds, 3), "phases": phases, "selected": int(len(selected)),
                                      "jaccard_vs_uncapped": round(jaccard(selected, uncapped), 4),
                                      "selected_anomaly_share": None if y is None else float(np.mean(y[selected]))}
    # share of training time, measured (this run) and projected to the 200-epoch budget
    out["share_of_fit_measured"] = median([r["reselect_total_s"] / r["wall_s"] for r in fits])
    epoch_s = median([r["train_epochs_s"] / max(1, r["epochs_run"]) for r in fits])
    out["fit_seconds_per_training_epoch"] = epoch_s
    projections = {}
    for name, reselect_s in [("uncapped", out["uncapped"]["median_s"])] + [(f"cap_{c}", out[f"cap_{c}"]["median_s"]) for c in caps]:
        total = 200 * epoch_s + (200 // args.r) * reselect_s
        projections[name] = {"total_s": round(total, 1), "reselect_share": round((200 // args.r) * reselect_s / total, 3)}
    out["projection_200_epochs_no_early_stop"] = projections
    return out


def section_threads(data, args) -> dict:
    """4. one training step (batch 1024) with 1 and 2 torch threads, with/without a busy process."""
    import torch

    from deepuad.estimators.autoencoder import Autoencoder

    X = torch.from_numpy(data["X"])
    torch.manual_seed(0)
    model = Autoencoder(X.shape[1], (60, 30, 10), "tanh")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    steps = args.thread_steps
    batches = [X[torch.randint(0, len(X), (1024,), generator=generator)] for _ in range(16)]

    def timed_steps(n):
        times = []
        for i in range(n):
            batch = batches[i % len(batches)]
            t0 = time.perf_counter()
            loss = torch.nn.functional.mse_loss(model(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - t0)
        return times

    before = torch.get_num_threads()
    configs = [(t, b) for b in (0, 1) for t in (1, 2)]
    raw: dict = {f"threads={t},busy={b}": {"median_ms": [], "mean_ms": [], "p95_ms": [], "load": []} for t, b in configs}
    for rep in range(args.reps):
        for busy in ((0, 1) if rep % 2 == 0 else (1, 0)):
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                if hog:
                    time.sleep(0.5)
                for threads in ((1, 2) if rep % 2 == 0 else (2, 1)):
                    torch.set_num_threads(threads)
                    timed_steps(20)  # warm-up
                    t0 = time.time()
                    times = np.array(timed_steps(steps)) * 1000
                    entry = raw[f"threads={threads},busy={busy}"]
                    entry["median_ms"].append(round(float(np.median(times)), 3))
                    entry["mean_ms"].append(round(float(times.mean()), 3))
                    entry["p95_ms"].append(round(float(np.percentile(times, 95)), 3))
                    entry["load"].append(LOAD.window(t0, time.time())["mean"])
            finally:
                if hog:
                    hog.kill()
                    hog.wait()
    torch.set_num_threads(before)
    summary = {k: {"median_ms": median(v["median_ms"]), "mean_ms": median(v["mean_ms"]), "p95_ms": median(v["p95_ms"]),
                   "load_mean": median(v["load"])} for k, v in raw.items()}
    steps_per_epoch = -(-len(data["initial"]) // 1024)
    for v in summary.values():
        v["epoch_s_estimate"] = round(v["mean_ms"] * steps_per_epoch / 1000, 2)
    return {"steps_timed": steps, "steps_per_epoch": steps_per_epoch, "raw": raw, "summary": summary}


def section_cli(args, work: Path) -> dict:
    """5. the CLI on the bundled 5k sample: epochs used and stop reason vs the 200-epoch budget."""
    sample = Path("sample_data") / "kddcup99_5k.csv.gz"  # relative to the repository root (cwd of the commands)
    folder = work / "cli5k"
    folder.mkdir(exist_ok=True)
    f, c = folder / "kdd5k.features.h5", folder / "kdd5k.clusters.h5"

    def cli(*a):
        command = [sys.executable, "-m", "deepuad", *map(str, a), "--json"]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return json.loads(done.stdout), round(seconds, 2), "deepuad " + " ".join(shlex.quote(str(x)) for x in a) + " --json"

    out: dict = {"commands": []}
    for step in (("extract", sample, "--label-column", "label", "--anomaly-values", "normal.", "-o", f), ("cluster", f, "-o", c)):
        summary, seconds, line = cli(*step)
        out["commands"].append({"command": line, "seconds": seconds})
    out["runs"] = []
    rules = [("default", [])] + ([("variance (paper's GMM rule)", ["--reselect-by", "variance"])] if supports("reselect_by") else [])
    for (rule, extra), seed in [(r, s) for r in rules for s in args.cli_seeds]:
        t0 = time.time()
        model = folder / f"kdd5k.s{seed}.{len(extra)}.model.h5"
        summary, seconds, line = cli("train", f, c, "-o", model, "--seed", seed, *extra)
        out["commands"].append({"command": line, "seconds": seconds})
        out["runs"].append({"rule": rule, "seed": seed, "epochs": summary["epochs"], "stop_reason": summary["stop_reason"],
                            "reselections": summary["reselections"], "last_changed": summary["last_changed"],
                            "selected": summary["selected"], "rows": summary["rows"], "train_auroc": summary.get("train_auroc"),
                            "threads": summary["threads"], "seconds": seconds, "load": LOAD.window(t0, time.time())})
    return out


def section_pipeline(args, work: Path) -> dict:
    """6. the default cluster + train + score through the CLI vs PyOD's AutoEncoder, 20 epochs, interleaved."""
    from pyod.models.auto_encoder import AutoEncoder

    from deepuad.artifacts.features import read_features
    from deepuad.stages._common import set_threads

    features = work / "train.features.h5"
    X = read_features(features)["X"]
    stages = (("cluster", features, "-o", work / "p.clusters.h5"),
              ("train", features, work / "p.clusters.h5", "-o", work / "p.model.h5", "--threads", "1"),
              ("score", work / "p.model.h5", features, "-o", work / "p.scores.h5", "--threads", "1"))

    def deepuad_pipeline() -> dict:
        seconds = {}
        for stage in stages:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "deepuad", "--quiet", *map(str, stage)], check=True, cwd=ROOT,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
            seconds[stage[0]] = round(time.perf_counter() - t0, 1)
        for stale in ("p.clusters.h5", "p.model.h5", "p.scores.h5"):
            (work / stale).unlink()
        return {"wall_s": round(sum(seconds.values()), 1), "stages_s": seconds}

    def pyod_fit() -> dict:
        set_threads(1)
        ae = AutoEncoder(contamination=0.2, preprocessing=False, lr=1e-3, epoch_num=20, batch_size=1024, device="cpu",
                         random_state=0, verbose=0, optimizer_params={"weight_decay": 0.0}, hidden_neuron_list=[60, 30, 10],
                         hidden_activation_name="tanh", batch_norm=False, dropout_rate=0.0)
        t0 = time.perf_counter()
        ae.fit(X)
        return {"wall_s": round(time.perf_counter() - t0, 1)}

    out: dict = {"deepuad": [], "pyod": [], "ratio_per_rep": []}
    for rep in range(args.reps):
        for name in (("deepuad", "pyod") if rep % 2 == 0 else ("pyod", "deepuad")):
            t0 = time.time()
            record = deepuad_pipeline() if name == "deepuad" else pyod_fit()
            record["load"] = LOAD.window(t0, time.time())
            out[name].append(record)
            print(f"  pipeline rep {rep} {name}: {json.dumps(record)}", flush=True)
        out["ratio_per_rep"].append(out["deepuad"][-1]["wall_s"] / out["pyod"][-1]["wall_s"])
    out.update(deepuad_wall_s=median([r["wall_s"] for r in out["deepuad"]]), pyod_wall_s=median([r["wall_s"] for r in out["pyod"]]),
               ratio=median(out["ratio_per_rep"]))
    out["met"] = out["ratio"] <= 1.0
    return out


# --------------------------------------------------------------------------- report


def fmt(x, nd=2):
    return "n/a" if x is None else f"{x:.{nd}f}"


def write_markdown(path: Path, R: dict, args) -> None:
    m, d = R["machine"], R["data"]
    L = []
    L.append("# deepuad training speed (bench/speed.py)\n")
    L.append(f"Machine: `nproc` = {m['nproc']}, CPU: {m['cpu_model']}, {m['mem_total_mib']} MiB RAM; Python {m['python']}, "
             f"torch {m['torch']}, numpy {m['numpy']}, scikit-learn {m['sklearn']}, PyOD {m['pyod']}. "
             f"The machine was **shared** with other long-running processes: 1-min load average at start "
             f"{m['loadavg_start'][0]:.2f} on {m['nproc']} cores, over the whole run mean {R['load_overall']['mean']} "
             f"(min {R['load_overall']['min']}, max {R['load_overall']['max']}). Every goal is therefore a ratio against a "
             "reference measured in the same run, interleaved (A B / B A ...), median of "
             f"{args.reps} repetitions; absolute seconds are only indicative.\n")
    L.append(f"Command: `{R['command']}` (repository root, venv active); wall time of the whole run {R['run_seconds'] / 60:.1f} min.\n")
    g = R.get("git", {})
    L.append(f"Code measured: commit {g.get('commit')} ({g.get('subject')})"
             + (f" plus uncommitted changes to {', '.join(g['uncommitted_package_files'])}" if g.get("uncommitted_package_files") else "")
             + " (the package as imported at the start of the run).\n")
    L.append(f"Data: {d['source']}: {d['rows']:,} rows x {d['columns']} float32 columns, anomaly share "
             f"{fmt(d['anomaly_share'], 3)}; extract {d['extract_seconds']} s; initial selection (GMM 20 diag, p0 {args.p0}, "
             f"percentile over samples) {d['initial_clustering_seconds']} s, {d['initial_selected']:,} rows selected (not part of "
             "the timed fits: passed as `initial=`, as `deepuad train` does with the clusters file).\n")
    L.append(f"Net {d['columns']}-60-30-10 mirrored (tanh, linear bottleneck and output), batch 1024, Adam lr 1e-3, MSE, r = 10, p = 30. "
             f"Threads for sections 1-3: {R['threads']} (deepuad's default on this machine, `set_threads(None)`), also used for PyOD.\n")

    e, f, c, t = R.get("epoch"), R.get("fit"), R.get("caps"), R.get("threads_section")
    L.append("## Targets\n")
    L.append("| # | goal | deepuad | reference | ratio | target | met | load (mean) |")
    L.append("|---|---|---:|---:|---:|---|---|---:|")
    if e:
        L.append(f"| 1 | training-epoch throughput vs bare PyTorch loop ({e['rows_per_epoch']:,} rows/epoch) | "
                 f"{e['deepuad_s_per_epoch']:.2f} s/epoch | {e['bare_s_per_epoch']:.2f} s/epoch | {e['throughput_ratio']:.2f}x | "
                 f">= 0.8x | {'yes' if e['met'] else '**no**'} | {e['load']['mean']} |")
    if f:
        for name, params in f["variants"].items():
            rule = ", ".join(f"{k}={v}" for k, v in params.items()) or "default re-selection"
            L.append(f"| 2 | whole `fit` ({rule}), {f['epochs']} epochs (r = {f['r']}), vs PyOD AutoEncoder {f['epochs']} epochs | "
                     f"{f[name + '_wall_s']:.1f} s | {f['pyod_wall_s']:.1f} s | {f['ratio_' + name]:.2f}x | <= 0.5x | "
                     f"{'yes' if f['met_' + name] else '**no**'} | {f['load']['mean']} |")
        for key, v in ((k, v) for k, v in (c or {}).items() if k.startswith("cap_")):
            gmm = f[f["gmm_variant"]]
            ratios = [(r["wall_s"] - r["reselections"][0]["seconds"] + v["median_s"]) / p["wall_s"] for r, p in zip(gmm, f["pyod"])]
            L.append(f"| 2 | *projected*: GMM rule with `reselect_fit_sample={key[4:]}` (each rep's fit with its re-selection "
                     f"replaced by the capped one, section 3) | | | {median(ratios):.2f}x | <= 0.5x | "
                     f"{'yes' if median(ratios) <= 0.5 else 'no'} | |")
    pipe = R.get("pipeline")
    if pipe:
        L.append(f"| 6 | default `cluster` + `train` + `score` (three processes, 1 thread) vs PyOD AutoEncoder 20 epochs | "
                 f"{pipe['deepuad_wall_s']:.1f} s | {pipe['pyod_wall_s']:.1f} s | {pipe['ratio']:.2f}x | <= 1.0x | "
                 f"{'yes' if pipe['met'] else '**no**'} | {pipe['load']['mean']} |")
    L.append("")
    if pipe:
        L.append("## 6. The default pipeline vs PyOD's AutoEncoder\n")
        L.append("deepuad: `cluster`, `train --threads 1`, `score --threads 1` on the features file, each a new process (imports "
                 "included), defaults otherwise (re-selection until converged or 100 epochs). PyOD: the net of section 2, 20 "
                 "epochs, fitted in this process (imports not counted).\n")
        L.append("| rep | deepuad s (cluster / train / score) | PyOD s | deepuad / PyOD |\n|---:|---|---:|---:|")
        for i, (a, b, r) in enumerate(zip(pipe["deepuad"], pipe["pyod"], pipe["ratio_per_rep"])):
            L.append(f"| {i} | {a['wall_s']:.1f} ({' / '.join(f'{v:.1f}' for v in a['stages_s'].values())}) | {b['wall_s']:.1f} | {r:.2f} |")
        L.append("")
    if e:
        L.append("## 1. Epoch throughput\n")
        L.append("`DeepUAD._train_one_epoch` on a started detector (indexes the selected rows of the full tensor) vs a bare loop over "
                 "the same rows pre-gathered into one tensor (randperm + index + forward/backward/step), same net and init; one "
                 "warm-up epoch each, then interleaved.\n")
        L.append("| rep | deepuad s | bare s | bare/deepuad |\n|---:|---:|---:|---:|")
        for i, (a, b, r) in enumerate(zip(e["seconds"]["deepuad"], e["seconds"]["bare"], e["throughput_ratio_per_rep"])):
            L.append(f"| {i} | {a:.2f} | {b:.2f} | {r:.2f} |")
        L.append("")
    if f:
        L.append("## 2. Whole fit vs PyOD\n")
        L.append(f"Reduced budget by default: {f['epochs']} epochs (`--epochs 200` for the paper's budget). With r = 10 the fit "
                 "does one re-selection per 10 epochs at any budget, so the ratio carries over unless deepuad stops early "
                 "(converges), which only helps it. deepuad's fit = training epochs on the selected rows + re-selections + scoring "
                 "all rows; PyOD's = epochs on all rows (DataLoader over a per-row Dataset) + scoring all rows. PyOD's net: "
                 "`hidden_neuron_list=[60, 30, 10]`, tanh, `batch_norm=False`, `dropout_rate=0.0`, "
                 "`optimizer_params={'weight_decay': 0.0}`, `preprocessing=False` (the data is min-max scaled already); PyOD "
                 "applies tanh after the bottleneck too (deepuad's bottleneck is linear), otherwise the nets match.\n")
        L.append("| rep | variant | wall s | of which re-selection s | CPU s | epochs run | rows selected after each re-selection | / PyOD | load |")
        L.append("|---:|---|---:|---:|---:|---|---|---:|---:|")
        for i in range(len(f["pyod"])):
            for name, params in f["variants"].items():
                a, r = f[name][i], f["ratio_per_rep_" + name][i]
                rule = ", ".join(f"{k}={v}" for k, v in params.items()) or "deepuad (default)"
                L.append(f"| {i} | {rule} | {a['wall_s']:.1f} | {a['reselect_total_s']:.1f} | {a['cpu_s']:.1f} | "
                         f"{a['epochs_run']} ({a['stop_reason']}) | {', '.join(f'{n:,}' for n in a['selected_sizes'])} | {r:.2f} | {a['load']['mean']} |")
            b = f["pyod"][i]
            L.append(f"| {i} | PyOD AutoEncoder | {b['wall_s']:.1f} | - | {b['cpu_s']:.1f} | {f['epochs']} | all rows | 1 | {b['load']['mean']} |")
        same = ", ".join(f"{name}: {f[name + '_reps_identical']}" for name in f["variants"])
        L.append(f"\ndeepuad runs identical across reps (same selections): {same}. PyOD: "
                 f"{f['pyod_s_per_epoch_incl_scoring']:.1f} s per epoch (scoring included).\n")
    if c and "skipped" not in c:
        u = c["uncapped"]
        L.append("## 3. Re-selection cost (the paper's GMM rule)\n")
        L.append("One re-selection = encode all rows + GMM (20 components, full covariance, reg 1e-6, max_iter 100) on "
                 "z = [code; 1 - cos] + assign all rows + selection. Uncapped: timed inside the fits above (the first "
                 "re-selection, same state in every rep). Capped: `reselect_fit_sample` = N, the same re-selection re-run from "
                 "a snapshot of the detector taken just before it (same weights, same z, same GMM seed).\n")
        L.append("| variant | median s (reps) | speed-up | phases of one run (s) | selected rows | Jaccard vs uncapped | anomaly share of selection |")
        L.append("|---|---:|---:|---|---:|---:|---:|")
        def ph(p):
            return ", ".join(f"{k} {v:.1f}" for k, v in p.items())
        L.append(f"| uncapped ({d['rows']:,} rows) | {u['median_s']:.1f} ({', '.join(f'{s:.1f}' for s in u['seconds'])}) | 1.00 | "
                 f"{ph(u['phases'][0])} | {u['selected']:,} | 1 | {fmt(u['selected_anomaly_share'], 4)} |")
        for key in [k for k in c if k.startswith("cap_")]:
            v = c[key]
            L.append(f"| `reselect_fit_sample={key[4:]}` | {v['median_s']:.1f} ({', '.join(f'{s:.1f}' for s in v['seconds'])}) | "
                     f"{v['speedup_vs_uncapped']:.1f}x | {ph(v['phases'][0])} | {v['selected']:,} | {v['jaccard_vs_uncapped']:.4f} | "
                     f"{fmt(v['selected_anomaly_share'], 4)} |")
        if "uncapped_other_seed" in c:
            v = c["uncapped_other_seed"]
            L.append(f"| uncapped, other GMM seed (reference for 'how different is different') | {v['seconds']:.1f} (1 run) | - | "
                     f"{ph(v['phases'])} | {v['selected']:,} | {v['jaccard_vs_uncapped']:.4f} | {fmt(v['selected_anomaly_share'], 4)} |")
        L.append("")
        L.append(f"Phases: `encode_and_score` (all rows through the net), `gmm_labels` (GMM fit + predict all rows), `select` "
                 f"(cluster variances + rule). Share of the measured fit spent in re-selection: {c['share_of_fit_measured']:.0%}. "
                 f"Training epochs inside `fit`: {c['fit_seconds_per_training_epoch']:.2f} s each.\n")
        L.append("Projection to the 200-epoch budget without early stop (200 x epoch + 20 x re-selection, from this run's medians):\n")
        L.append("| variant | projected train s | re-selection share |\n|---|---:|---:|")
        for k, v in c["projection_200_epochs_no_early_stop"].items():
            L.append(f"| {k} | {v['total_s']:.0f} | {v['reselect_share']:.0%} |")
        L.append("")
    if t:
        L.append("## 4. Threads\n")
        L.append(f"One training step (batch 1024, forward + backward + Adam) of the same net; {t['steps_timed']} steps per "
                 "measurement after 20 warm-up steps; 'busy' = one `python -c \"while True: pass\"` process started by the "
                 "benchmark. Load column: 1-min load average during the measurement (it lags, and counts this benchmark and the busy "
                 "process themselves; other work on the machine comes on top). "
                 f"Epoch estimate = mean step x {t['steps_per_epoch']} steps.\n")
        L.append("| torch threads | competing busy process | median ms/step | mean ms/step | p95 ms/step | epoch estimate s | load |")
        L.append("|---:|---|---:|---:|---:|---:|---:|")
        for k, v in t["summary"].items():
            th, busy = k.split(",")
            L.append(f"| {th.split('=')[1]} | {'yes' if busy.endswith('1') else 'no'} | {v['median_ms']:.2f} | {v['mean_ms']:.2f} | "
                     f"{v['p95_ms']:.2f} | {v['epoch_s_estimate']:.2f} | {v['load_mean']} |")
        L.append("")
        L.append(R.get("threads_verdict", "") + "\n")
    cli = R.get("cli")
    if cli:
        L.append("## 5. Epochs to convergence (CLI, 5k sample)\n")
        L.append("Commands (run from the repository root):\n")
        L.append("```")
        for cmd in cli["commands"]:
            L.append(f"{cmd['command']}    # {cmd['seconds']} s")
        L.append("```\n")
        L.append("| re-selection | seed | epochs used / budget | stop reason | re-selections | changed at last | selected / rows | train AUROC | threads | train s | load |")
        L.append("|---|---:|---|---|---:|---:|---|---:|---:|---:|---:|")
        for r in cli["runs"]:
            L.append(f"| {r['rule']} | {r['seed']} | {r['epochs']} / 200 | {r['stop_reason']} | {r['reselections']} | {r['last_changed']} | "
                     f"{r['selected']:,} / {r['rows']:,} | {fmt(r['train_auroc'], 4)} | {r['threads']} | {r['seconds']} | {r['load']['mean']} |")
        L.append("")
    other = R.get("compare")
    if other:
        o = other["data"]
        L.append(f"## The same script in another run (`{other['path']}`)\n")
        L.append(f"Command `{o['command']}`, code {o.get('git', {}).get('commit', '?')}, 1-min load average mean "
                 f"{o['load_overall']['mean']} (min {o['load_overall']['min']}, max {o['load_overall']['max']}) on {o['machine']['nproc']} cores.\n")
        L.append("| measure | this run | other run |\n|---|---:|---:|")
        def pick(d, keys):
            for k in keys:
                if not isinstance(d, dict) or k not in d:
                    return None
                d = d[k]
            return d
        rows = [("1. epoch throughput, bare/deepuad", ("epoch", "throughput_ratio"), "{:.2f}x"),
                ("1. deepuad s/epoch", ("epoch", "deepuad_s_per_epoch"), "{:.2f}"),
                ("2. fit / PyOD, default re-selection", ("fit", "ratio_deepuad"), "{:.2f}x"),
                ("2. fit / PyOD, GMM rule", ("fit", "ratio_deepuad_gmm"), "{:.2f}x"),
                ("2. PyOD fit s", ("fit", "pyod_wall_s"), "{:.1f}"),
                ("3. uncapped GMM re-selection s", ("caps", "uncapped", "median_s"), "{:.1f}"),
                ("3. re-selection share of the GMM-rule fit", ("caps", "share_of_fit_measured"), "{:.0%}"),
                ("3. cap 20000: s / Jaccard", None, None),
                ("4. ms/step mean, 1 thread / 2 threads, no busy", None, None),
                ("4. ms/step mean, 1 thread / 2 threads, busy", None, None)]
        def cell(d, label, keys, pattern):
            if keys:
                v = pick(d, keys)
                return "n/a" if v is None else pattern.format(v)
            if label.startswith("3."):
                v = pick(d, ("caps", "cap_20000"))
                return "n/a" if not v else f"{v['median_s']:.1f} / {v['jaccard_vs_uncapped']:.4f}"
            busy = "1" if label.endswith(", busy") else "0"
            t = pick(d, ("threads_section", "summary"))
            return "n/a" if not t else f"{t[f'threads=1,busy={busy}']['mean_ms']:.2f} / {t[f'threads=2,busy={busy}']['mean_ms']:.2f}"
        for label, keys, pattern in rows:
            L.append(f"| {label} | {cell(R, label, keys, pattern)} | {cell(o, label, keys, pattern)} |")
        L.append("")
    if R.get("notes"):
        L.append("## Notes\n")
        L.extend(f"- {n}" for n in R["notes"])
        L.append("")
    path.write_text("\n".join(L))


def threads_verdict(t: dict) -> str:
    s = t["summary"]
    a, b = s["threads=1,busy=0"]["mean_ms"], s["threads=2,busy=0"]["mean_ms"]
    c, d = s["threads=1,busy=1"]["mean_ms"], s["threads=2,busy=1"]["mean_ms"]
    text = (f"Mean step, 2 threads / 1 thread: {b / a:.2f}x without the busy process, {d / c:.2f}x with it "
            f"(> 1 means 2 threads are slower). A busy process makes 1 thread {c / a:.2f}x and 2 threads {d / b:.2f}x slower. ")
    if b / a >= 1 and d / c >= 1:
        text += ("Verdict: 2 threads lose in both cases: without competition the net (batch 1024 x 118 -> 60 -> 30 -> 10) "
                 "is too small for a second thread to pay for the synchronisation at every op, and with one competing "
                 "process a 2-thread OpenMP step waits for whichever thread was descheduled (see the p95). deepuad's "
                 "default of 1 thread on <= 2 cores is right.")
    elif b / a < 1 and d / c >= 1:
        text += (f"Verdict: 2 threads win only on a free CPU ({a / b:.2f}x faster) but lose {d / c:.2f}x as soon as one other "
                 "process competes; on a shared 2-core machine the default of 1 thread is the safe choice.")
    else:
        text += "Verdict: 2 threads win in both cases here; the default of 1 thread on <= 2 cores costs speed on this machine."
    return text


LOAD = LoadSampler()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("kdd", "synthetic"), default=None, help="default: kdd when the data is present")
    parser.add_argument("--kdd-data", default=str(ROOT.parent / "shared" / "data" / "kddcup99"))
    parser.add_argument("--limit", type=int, default=None, help="kdd: use a random subset of this many raw rows before the split")
    parser.add_argument("--rows", type=int, default=260_000, help="synthetic: number of rows")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of both fits in section 2 (paper: 200)")
    parser.add_argument("--r", type=int, default=10)
    parser.add_argument("--p0", type=float, default=35.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--caps", type=lambda s: [int(x) for x in s.split(",")], default=[20_000, 50_000])
    parser.add_argument("--no-seed-baseline", dest="seed_baseline", action="store_false",
                        help="skip the uncapped re-selection with another GMM seed (one extra uncapped GMM)")
    parser.add_argument("--thread-steps", type=int, default=300)
    parser.add_argument("--cli-seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--sections", default="epoch,fit,threads,cli", help="comma list of epoch,fit,threads,cli,pipeline (fit includes the re-selection caps)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "deepuad_bench_speed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "speed.md")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--compare-json", type=Path, default=None, help="add a table of key numbers from another run's speed.json")
    parser.add_argument("--from-json", type=Path, default=None, help="only re-write the Markdown from this speed.json (no measuring)")
    parser.add_argument("--note", action="append", default=[], help="a Markdown line for the Notes section (stored in the JSON); "
                        "with --from-json, --clear-notes first drops the stored ones")
    parser.add_argument("--clear-notes", action="store_true")
    args = parser.parse_args()
    if args.data is None:
        args.data = "kdd" if (Path(args.kdd_data) / "kddcup.data_10_percent.gz").exists() else "synthetic"
    sections = set(args.sections.split(","))
    if args.from_json:
        R = json.loads(args.from_json.read_text())
        if args.clear_notes:
            R["notes"] = []
        if args.note:
            R["notes"] = R.get("notes", []) + args.note
            args.from_json.write_text(json.dumps(R, indent=2, default=str))
        if "threads_section" in R:
            R["threads_verdict"] = threads_verdict(R["threads_section"])
        if args.compare_json:
            R["compare"] = {"path": str(args.compare_json), "data": json.loads(args.compare_json.read_text())}
        saved = argparse.Namespace(**{**vars(args), **{k: v for k, v in R["args"].items() if k in ("reps", "p0", "epochs", "r")}})
        write_markdown(args.out, R, saved)
        print(f"wrote {args.out} from {args.from_json}")
        return

    from deepuad.estimators import detector as detector_module
    from deepuad.stages._common import set_threads

    LOAD.start()
    run_start = time.time()
    R: dict = {"command": portable("python bench/speed.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])),
               "machine": machine_info("torch", "numpy", "sklearn", "h5py", "pyod"),
               "args": {k: (portable(str(v)) if isinstance(v, (Path, str)) else v) for k, v in vars(args).items()},
               "notes": list(args.note)}
    R["threads"] = set_threads(None)
    R["git"] = git_state()
    import deepuad

    R["deepuad_imported_from"] = portable(str(Path(deepuad.__file__).parent))
    timeline = Timeline()
    import deepuad.estimators.clustering as clustering_module

    timeline.wrap(detector_module, "encode_and_score")
    try:  # the rules choose in deepuad.estimators.rules (an older deepuad: in the detector module)
        import deepuad.estimators.rules as rules_module
    except ImportError:
        rules_module = detector_module
    timeline.wrap(rules_module, "select")
    timeline.wrap(clustering_module, "gmm_labels")  # a re-selection imports it from there
    work = args.workdir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        print(f"machine: {R['machine']}", flush=True)
        t0 = time.time()
        data = prepare_data(args, work)
        R["data"] = data["info"]
        R["data"]["load"] = LOAD.window(t0, time.time())
        print(f"data: {R['data']}", flush=True)

        if "epoch" in sections:
            t0 = time.time()
            R["epoch"] = section_epoch(data, args, R["threads"])
            R["epoch"]["load"] = LOAD.window(t0, time.time())
            print(f"epoch: {json.dumps(R['epoch'])}", flush=True)
        if "fit" in sections:
            t0 = time.time()
            R["fit"], snapshot = section_fit(data, args, timeline)
            R["fit"]["load"] = LOAD.window(t0, time.time())
            t0 = time.time()
            R["caps"] = section_caps(data, args, snapshot, R["fit"], timeline)
            R["caps"]["load"] = LOAD.window(t0, time.time())
            print(f"caps: {json.dumps(R['caps'])[:2000]}", flush=True)
        if "threads" in sections:
            t0 = time.time()
            R["threads_section"] = section_threads(data, args)
            R["threads_section"]["load"] = LOAD.window(t0, time.time())
            R["threads_verdict"] = threads_verdict(R["threads_section"])
            print(f"threads: {json.dumps(R['threads_section']['summary'])}", flush=True)
        set_threads(R["threads"])
        if "cli" in sections:
            t0 = time.time()
            R["cli"] = section_cli(args, work)
            R["cli"]["load"] = LOAD.window(t0, time.time())
            print(f"cli: {json.dumps(R['cli']['runs'])}", flush=True)
        if "pipeline" in sections:
            t0 = time.time()
            R["pipeline"] = section_pipeline(args, work)
            R["pipeline"]["load"] = LOAD.window(t0, time.time())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    LOAD.stop()
    R["run_seconds"] = time.time() - run_start
    R["load_overall"] = LOAD.window(run_start, time.time())
    R["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(R, indent=2, default=str))
    if args.compare_json:
        R["compare"] = {"path": str(args.compare_json), "data": json.loads(args.compare_json.read_text())}
    write_markdown(args.out, R, args)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
