"""Speed, memory and selection quality of deepuad's scalable distribution clustering.

Data: CIFAR-10 ResNet-18 embeddings, ../shared/data/image_embeddings/CV_by_ResNet18/
CIFAR10_0.npz next to the repository (X 5263 x 512 float32, y: 1 = anomaly, 5 %). The 20k and
50k sets are the real rows followed by noisy copies of them (isotropic Gaussian noise of total variance
NOISE * ||x||^2 per copy, so a copy sits at squared distance ~0.09 from its source after
L2 normalisation, about half the real data's median nearest-neighbour distance of 0.19).
Parameters: the paper's CIFAR row, thres 0.06, min_clus 5, max_dist 1.4, normalize l2, and
the class defaults otherwise (1024 anchors, 20 neighbours, chunks of 4096).

Each size runs in a fresh Python subprocess; peak memory is that process's peak resident set
size from resource.getrusage (ru_maxrss: interpreter, numpy/torch, the data and the fit), and
the table also gives the resident size just before fit so the fit's own share is visible.

Run from the repository root (single-threaded BLAS, as the numbers below were taken):
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/distribution_speed.py
Writes bench/results/distribution_speed.md (``--out``).

Smoke runs (tests/test_bench_smoke.py): ``--limit N`` uses a random subset of N real rows (the
noisy copies are then made from those), ``--sizes`` sets the noisy-copy set sizes (none: only the
real set), ``--skip-sensitivity`` skips the 5 extra (normalize, thres) runs on the real set, e.g.

    python bench/distribution_speed.py --limit 2000 --sizes 3000 --skip-sensitivity --out $TMPDIR/ds.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "image_embeddings", "CV_by_ResNet18", "CIFAR10_0.npz")
OUT = os.path.join(ROOT, "bench", "results", "distribution_speed.md")
PARAMS = dict(thres=0.06, min_clus=5, max_dist=1.4, normalize="l2")
SIZES = [None, 20_000, 50_000]          # None = the 5,263 real rows
NOISE = 0.1
COVER = 0.65                             # share of rows the lowest-variance clusters should cover


def load(n, limit=None):
    d = np.load(DATA)
    X, y = d["X"].astype(np.float32), d["y"].astype(np.int64)
    if limit and limit < len(X):  # a random subset of the real rows (smoke runs)
        keep = np.sort(np.random.default_rng(1).choice(len(X), limit, replace=False))
        X, y = X[keep], y[keep]
    if n is None or n <= len(X):
        return X, y
    rng = np.random.default_rng(0)
    src = np.concatenate([np.arange(len(X)), rng.integers(0, len(X), n - len(X))])
    Xb = X[src].copy()
    for s in range(len(X), n, 4096):                 # float32 chunks: small load peak
        blk = Xb[s : s + 4096]
        scale = np.linalg.norm(blk, axis=1, keepdims=True) * np.float32(np.sqrt(NOISE / X.shape[1]))
        blk += rng.standard_normal(blk.shape, dtype=np.float32) * scale
    return Xb, y[src]


def current_rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def selection(dc, y):
    """Anomaly share of two initial-selection rules applied to the clusters."""
    s2, sizes, lab = dc.cluster_s2_, dc.cluster_sizes_, dc.labels_
    out = {}
    if not len(s2):
        return out
    # Lowest-variance clusters until they cover COVER of all rows (or all clusters if the
    # clustered rows are fewer).
    order = np.argsort(s2, kind="stable")
    k = min(int(np.searchsorted(np.cumsum(sizes[order]), COVER * len(lab))) + 1, len(order))
    sel = np.isin(lab, order[:k])
    out["rows"] = dict(n_clusters=int(k), coverage=float(sel.mean()), anomaly_share=float(y[sel].mean()))
    # The paper's literal rule: clusters with variance at or below the 65th percentile of the
    # cluster variances, one value per cluster.
    sel = np.isin(lab, np.flatnonzero(s2 <= np.percentile(s2, 100 * COVER)))
    out["clusters"] = dict(coverage=float(sel.mean()), anomaly_share=float(y[sel].mean()))
    return out


def worker(n, params, limit=None):
    from deepuad.estimators.distribution import DistributionClustering

    X, y = load(n, limit)
    import torch  # noqa: F401  (imported by fit anyway; keep its footprint out of the fit's share)
    rss_before = current_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    dc = DistributionClustering(**params).fit(X)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    res = dict(n=len(X), d=X.shape[1], wall_s=wall, cpu_s=cpu,
               rss_before_mb=rss_before, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               n_clusters=dc.n_clusters_, unclustered=float(np.mean(dc.labels_ < 0)),
               anomaly_share=float(y.mean()), n_knn_builds=dc.n_knn_builds_, n_seeds_grown=dc.n_seeds_grown_,
               mu_range=[float(dc.cluster_mu_.min()), float(dc.cluster_mu_.max())] if dc.n_clusters_ else None,
               anomaly_unclustered=float(y[dc.labels_ < 0].mean()) if np.any(dc.labels_ < 0) else None,
               selection=selection(dc, y))
    if n is None and params == PARAMS:
        from deepuad.estimators.distribution import estimate_thres
        t0 = time.perf_counter()
        res["estimate_thres"] = {q: estimate_thres(X, normalize=params["normalize"], quantile=q)
                                 for q in (0.25, 0.5, 0.75)}
        res["estimate_thres_s"] = time.perf_counter() - t0
    print(json.dumps(res))


def run_sub(n, params, limit=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps([n, params, limit])]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return dict(nproc=os.cpu_count(), cpu=model, python=platform.python_version(), numpy=np.__version__,
                threads=threads)


def fmt_sel(sel, key):
    s = sel.get(key)
    if not s:
        return "-"
    return f"{100 * s['anomaly_share']:.1f} % of {100 * s['coverage']:.1f} % rows"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--limit", type=int, default=None, help="use a random subset of this many real rows (smoke runs)")
    parser.add_argument("--sizes", type=int, nargs="*", default=SIZES[1:], help="rows of the noisy-copy sets [default: 20000 50000]")
    parser.add_argument("--skip-sensitivity", action="store_true", help="skip the (normalize, thres) variants on the real set")
    args = parser.parse_args()
    rows = [run_sub(n, PARAMS, args.limit) for n in [None, *args.sizes]]
    variants = []
    for normalize in ("l2", "center-l2") if not args.skip_sensitivity else ():
        for thres in (0.06, round(rows[0]["estimate_thres"]["0.5"], 3), 0.1):
            if normalize == "l2" and thres == 0.06:
                continue
            variants.append(run_sub(None, PARAMS | dict(thres=thres, normalize=normalize), args.limit) | dict(
                thres=thres, normalize=normalize))
    m = machine()
    real = rows[0]
    L = []
    L.append("# Distribution clustering: speed, memory, selection quality\n")
    L.append(f"Machine: `nproc` = {m['nproc']}, CPU: {m['cpu']}; Python {m['python']}, numpy {m['numpy']}; "
             f"threads: {', '.join(f'{k}={v}' for k, v in m['threads'].items())}.  ")
    command = " ".join(["python bench/distribution_speed.py", *map(shlex.quote, sys.argv[1:])])
    L.append(f"Command: `OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 {command}` "
             "(repository root). The machine was shared with other work, so wall time can exceed CPU time.\n")
    subset = f", a random subset of {real['n']:,} rows (--limit)" if args.limit else ""
    sizes = " and ".join(f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}" for n in args.sizes) or "No larger sets"
    L.append(f"Data: CIFAR-10 ResNet-18 embeddings `CIFAR10_0.npz` ({real['n']:,} x {real['d']}{subset}, "
             f"{100 * real['anomaly_share']:.1f} % anomalies). {sizes} = the "
             f"real rows plus noisy copies (isotropic noise of total variance {NOISE} x ||x||^2 per copy). "
             "Parameters: paper CIFAR row, thres 0.06, min_clus 5, max_dist 1.4, normalize l2; "
             "1024 anchors, 20 neighbours, chunk 4096.\n")
    L.append("Memory: peak resident set size of a fresh subprocess per size (`resource.getrusage(RUSAGE_SELF)."
             "ru_maxrss`; includes the interpreter, numpy, torch and the data). 'RSS before fit' is the "
             "current resident size (`/proc/self/statm`) just before `fit`, with data loaded and torch "
             "imported; 'fit share' = peak - before, the most the fit itself added.\n")
    L.append("| rows | wall s | CPU s | peak RSS MB | RSS before fit MB | fit share MB | clusters | unclustered | kNN builds | seeds grown |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        L.append(f"| {r['n']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                 f"{r['rss_before_mb']:.0f} | {r['peak_rss_mb'] - r['rss_before_mb']:.0f} | "
                 f"{r['n_clusters']} | {100 * r['unclustered']:.1f} % | "
                 f"{r['n_knn_builds']} | {r['n_seeds_grown']} |")
    L.append("")
    if args.sizes == SIZES[1:]:
        L.append("The 20k/50k rows are speed tests only: each noisy copy family is itself a tight Gaussian around "
                 "its source, which is exactly what distribution clustering finds, so at 50k (~9.5 copies per "
                 "source, more than min_clus) almost every family becomes its own small cluster. Their cluster "
                 "counts say nothing about real data.\n")
    elif args.sizes:
        L.append("The noisy-copy rows are speed tests only: each copy family is a tight Gaussian around its source, "
                 "which distribution clustering finds as its own cluster; their cluster counts say nothing about real data.\n")
    sel = real["selection"]
    real_set = f"{real['n']:,}-row subset" if args.limit else "5k set"
    L.append(f"## Real {real_set} (paper parameters)\n")
    L.append(f"- clusters: {real['n_clusters']}; unclustered: {100 * real['unclustered']:.1f} % of rows "
             f"(anomaly share among the unclustered {100 * real['anomaly_unclustered']:.1f} %); cluster mu "
             f"{real['mu_range'][0]:.3f}-{real['mu_range'][1]:.3f}.")
    if sel:
        L.append(f"- lowest-variance clusters (sorted by s^2) until {100 * COVER:.0f} % of rows are covered: "
                 f"{sel['rows']['n_clusters']} clusters reach only {100 * sel['rows']['coverage']:.1f} % of rows "
                 f"(all clustered rows), anomaly share {100 * sel['rows']['anomaly_share']:.1f} % "
                 f"vs {100 * real['anomaly_share']:.1f} % in the data.")
        L.append(f"- paper's literal rule (clusters with s^2 <= 65th percentile of cluster s^2): "
                 f"{fmt_sel(sel, 'clusters')}.")
    et = real["estimate_thres"]
    L.append(f"- `estimate_thres` (nearest-neighbour profile distance, 2,000 rows, {real['estimate_thres_s']:.1f} s): "
             f"quantile 0.25 -> {et['0.25']:.3f}, median (default) -> {et['0.5']:.3f}, 0.75 -> {et['0.75']:.3f}; "
             f"the paper uses 0.06.\n")
    L.append(f"### Sensitivity on the real {real_set}\n")
    L.append("| normalize | thres | clusters | unclustered | anomaly share: lowest-s^2 clusters to 65 % rows | "
             "anomaly share: clusters <= 65th pct s^2 | wall s |")
    L.append("|---|---:|---:|---:|---|---|---:|")
    for v in [real | dict(thres=0.06, normalize="l2")] + variants:
        L.append(f"| {v['normalize']} | {v['thres']} | {v['n_clusters']} | {100 * v['unclustered']:.1f} % | "
                 f"{fmt_sel(v['selection'], 'rows')} | {fmt_sel(v['selection'], 'clusters')} | {v['wall_s']:.1f} |")
    L.append("")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(*json.loads(sys.argv[2]))
    else:
        main()
