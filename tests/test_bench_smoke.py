"""Smoke runs of every benchmark script in bench/ ("Benchmarks are not tests: CI runs only a tiny
smoke version of each script").

Each script runs as a subprocess (``sys.executable bench/<script>.py ...``) with its smallest
knobs, from a temporary folder, with every output (tables, CSV, JSON, work folders) in pytest's
``tmp_path``; each test checks the exit code and that the output table holds the expected rows
and numbers. KDDCUP scripts that read bench/kdd_table.py's split folders share one tiny split
(module scope). The subprocesses import this checkout's deepuad (PYTHONPATH), and a module
fixture checks that nothing under bench/results/ or runs/ of the repository changed.

Data: ../shared/data next to the repository, through conftest's ``shared_data`` fixture (skipped only
where that folder is absent); the panel also runs on generated sets, so CI (which has no shared data)
runs its smoke version.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
KDD = "kddcup99/kddcup.data_10_percent.gz"  # paths inside the shared data folder
MNIST = "mnist/t10k-images-idx3-ubyte.gz"
ODDS = "odds_adbench/4_breastw.npz"
CIFAR = "image_embeddings/CV_by_ResNet18/CIFAR10_0.npz"
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}


def need(shared_data: Path, name: str) -> None:
    """The scripts read the shared file themselves; a folder without it is a broken copy, not a skip."""
    assert (shared_data / name).is_file(), f"{shared_data / name} is missing from the shared data folder"


def bench(script: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    """Run bench/<script>.py from ``cwd`` (a temporary folder: a relative default path lands there,
    never in the repository); fail with its output tail unless it exits 0."""
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / f"{script}.py"), *map(str, args)],
                          cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"bench/{script}.py exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def table(path: Path) -> list[list[str]]:
    """The body rows of every Markdown table in ``path`` (header and |---| lines dropped), as cells."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip().startswith("|")]
    separator = [bool(re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line)) for line in lines]
    return [[cell.strip() for cell in line.strip("|").split("|")] for i, line in enumerate(lines)
            if not separator[i] and not (i + 1 < len(lines) and separator[i + 1])]


def number(cell: str) -> float:
    """The first number in a cell ('74.2 ± 0.0 (n=1) [93.5]', '**81.0**', '1,234')."""
    match = re.search(r"-?\d[\d,]*(\.\d+)?", cell)
    assert match, f"no number in {cell!r}"
    return float(match.group().replace(",", ""))


def files_under(*folders: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for folder in folders if folder.exists()
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module", autouse=True)
def repository_untouched():
    """No smoke run may write into the repository's bench/results/ or runs/."""
    guarded = (ROOT / "bench" / "results", ROOT / "runs")
    before = files_under(*guarded)
    yield
    assert files_under(*guarded) == before, "a smoke run wrote into bench/results/ or runs/"


@pytest.fixture(scope="module")
def kdd(tmp_path_factory, shared_data):
    """One tiny bench/kdd_table.py run (2,000 raw rows, seed 0, 20 %): its results folder and the
    split folder the dependent scripts read (train/test features, clusters.h5)."""
    need(shared_data, KDD)
    base = tmp_path_factory.mktemp("kdd_table")
    done = bench("kdd_table", "--limit", 2000, "--seeds", 0, "--contaminations", 0.2, "--methods", "deepuad", "iforest",
                 "--train-epochs", 1, "--workdir", base / "runs", "--results", base / "results", cwd=base)
    return {"results": base / "results", "split": base / "runs" / "c20_s0", "stdout": done.stdout}


def test_kdd_table(kdd):
    rows = {r[0]: r for r in table(kdd["results"] / "kddcup.md")}
    assert set(rows) == {"deepuad", "iforest"}
    for row in rows.values():  # method | 5 % AUROC | AUPRC | 10 % ... | 20 % AUROC | 20 % AUPRC | seeds | notes
        assert len(row) == 9 and row[7] == "0"
        assert row[1].startswith("–") and "(n=1)" in row[5] and 0 <= number(row[5]) <= 100 and 0 <= number(row[6]) <= 100
    assert rows["deepuad"][8].startswith("1 epochs") and rows["iforest"][8] == ""
    runs = list(csv.DictReader((kdd["results"] / "kddcup_runs.csv").open()))
    assert [r["method"] for r in runs] == ["deepuad", "iforest"] and all(0 <= float(r["auroc"]) <= 1 for r in runs)
    for name in ("train.features.h5", "test.features.h5", "clusters.h5"):
        assert (kdd["split"] / name).exists()


def test_kdd_parts(kdd, tmp_path):
    """bench/kdd_parts.py refits the default beside the tiny run's model (it exits non-zero unless that refit
    scores as the model does) and writes one row per model with every column an AUROC in %."""
    results = tmp_path / "results"
    results.mkdir()
    bench("kdd_parts", "--workdir", kdd["split"].parent, "--name", "smoke", "--results", results, cwd=tmp_path)
    rows = list(csv.DictReader((results / "kdd_parts_smoke.csv").open()))
    assert len(rows) == 1 and (rows[0]["contamination"], rows[0]["seed"]) == ("20", "0")
    assert set(rows[0]) - {"contamination", "seed"} == {"knn", "l2", "range", "tails", "default", "iforest", "knn kept",
                                                        "default +forest", "l2 + forest x2", "default +rotated",
                                                        "default +rotated/2", "kept anomalies %"}
    assert all(0 <= float(v) <= 100 for k, v in rows[0].items() if k not in ("contamination", "seed"))
    body = table(results / "kdd_parts_smoke.md")
    assert body[0][:2] == ["20 %", "0"] and body[-1][0] == "20 % (n=1)"


def test_kddcup(tmp_path, shared_data):
    need(shared_data, KDD)
    bench("kddcup", "--limit", 2000, "--workdir", tmp_path / "work", "--", "--epochs", 1, cwd=tmp_path)
    result = json.loads((tmp_path / "work" / "result.json").read_text())
    assert result["split"]["train_rows"] > 0 and result["split"]["test_rows"] == 1000
    assert result["train"]["epochs"] == 1  # the options after -- reach 'deepuad train'
    assert 0 <= result["test_auroc"] <= 1 and 0 <= result["test_auprc"] <= 1


def test_images_table(tmp_path, shared_data):
    need(shared_data, MNIST)
    bench("images_table", "--datasets", "mnist4", "--inits", "gmm", "--baselines", "ae", "--epochs", 1,
          "--workdir", tmp_path / "work", "--results", tmp_path / "results", cwd=tmp_path)
    rows = table(tmp_path / "results" / "images.md")
    # dataset | method | initial clustering | initial set (anomaly share) | AUROC | AUPRC | time s | notes
    assert [(r[0], r[1], r[2]) for r in rows] == [("mnist4", "deepuad", "gmm"), ("mnist4", "ae", "")]
    assert re.fullmatch(r"\d+ \(0\.\d{3}\)", rows[0][3])
    assert all(0 <= number(r[4]) <= 100 and 0 <= number(r[5]) <= 100 for r in rows)
    assert rows[0][7].startswith("1 epochs") and rows[1][7] == "1 epochs, all rows"


def test_panel(tmp_path, shared_data):
    need(shared_data, ODDS)
    bench("panel", "--datasets", "6_cardio", "29_Pima", "--methods", "deepuad", "deepuad-paper", "iforest", "--seeds", 0, 1,
          "--max-rows", 300, "--epochs", 1, "--results", tmp_path / "results", cwd=tmp_path)
    runs = list(csv.DictReader((tmp_path / "results" / "panel.csv").open()))
    # two data sets x three random methods x two seeds, every AUROC a probability
    assert len(runs) == 12 and {r["dataset"] for r in runs} == {"6_cardio", "29_Pima"}
    assert all(0 <= float(r["auroc"]) <= 1 and float(r["seconds"]) >= 0 for r in runs)
    assert {int(r["rows_fit"]) for r in runs} == {300}
    assert {(r["dataset"], r["family"], r["half"]) for r in runs} == {("6_cardio", "tables", "tuning"), ("29_Pima", "tables", "held-out")}
    text = (tmp_path / "results" / "panel.md").read_text()
    # each half reports its one set, and the share table its two
    assert text.count("1 data sets finished for every method.") == 2
    assert "| deepuad | tuning | 1 |" in text and "| deepuad | held-out | 1 |" in text
    # --resume skips every finished run: nothing is appended
    bench("panel", "--datasets", "6_cardio", "29_Pima", "--methods", "deepuad", "deepuad-paper", "iforest", "--seeds", 0, 1,
          "--max-rows", 300, "--epochs", 1, "--results", tmp_path / "results", "--resume", cwd=tmp_path)
    assert len(list(csv.DictReader((tmp_path / "results" / "panel.csv").open()))) == 12


def test_panel_on_generated_sets(tmp_path):
    """The panel's smoke run that needs no shared data (CI has none): two generated ADBench-style
    sets as tables and as bases of a synthetic and a spike set, every method that needs no optional
    package, two seeds."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "adbench"
    folder.mkdir()
    for name in ("1_shifted", "2_shifted"):
        normal, anomalies = rng.normal(loc=3.0, size=(200, 5)), rng.normal(loc=7.0, size=(20, 5))
        np.savez(folder / f"{name}.npz", X=np.vstack([normal, anomalies]), y=np.r_[np.zeros(200), np.ones(20)])
    sets = {"1_shifted": "tables", "2_shifted": "tables", "1_shifted+clustered_20": "synthetic", "2_shifted+spikes": "spikes"}
    methods = ["deepuad", "deepuad-paper", "deepuad:default", "iforest", "dagmm"]
    bench("panel", "--adbench-dir", folder, "--bases", "1_shifted", "2_shifted", "--datasets", *sets, "--methods", *methods,
          "--seeds", 0, 1, "--epochs", 1, "--results", tmp_path / "results", cwd=tmp_path)
    runs = list(csv.DictReader((tmp_path / "results" / "panel.csv").open()))
    assert sorted((r["dataset"], r["method"], r["seed"]) for r in runs) == sorted(
        (name, m, str(seed)) for name in sets for m in methods for seed in (0, 1))
    assert all(r["family"] == sets[r["dataset"]] for r in runs)
    half = {r["dataset"]: r["half"] for r in runs}  # a base's variants share its half; the two bases split
    assert half["1_shifted"] == half["1_shifted+clustered_20"] != half["2_shifted"] == half["2_shifted+spikes"]
    rows = {r["dataset"]: int(r["rows_fit"]) for r in runs}
    # 200 normal rows (under 0.8 x 2,000) plus 20 % clustered anomalies; 20 of the 200 spiked in place
    assert rows == {"1_shifted": 220, "2_shifted": 220, "1_shifted+clustered_20": 250, "2_shifted+spikes": 200}
    for r in runs:
        assert 0 <= float(r["f1_default"]) <= 1 and 0 <= float(r["f1_true_share"]) <= 1
        assert (r["spike_recall"] != "") == (r["family"] == "spikes") and 0 <= float(r["spike_recall"] or 0) <= 1
        assert (r["estimated_share"] != "") == r["method"].startswith("deepuad")
    # anomalies 4 standard deviations away: the labels and the scores' direction line up
    assert all(float(r["auroc"]) > 0.95 for r in runs if r["method"] == "iforest" and r["family"] == "tables")
    text = (tmp_path / "results" / "panel.md").read_text()
    assert text.count("2 data sets finished for every method.") == 2 and "mean of family means" in text
    assert "| 2_shifted+spikes |" in text.split("## Spikes")[1] and "DAGMM is not in" not in text
    assert "| clustered_20 | 1 |" in text.split("## Synthetic anomalies by type and share")[1]
    assert "Seeds run per set: deepuad 0, 1 on every set;" in text


def test_unseen_bases(tmp_path):
    """bench/unseen_bases.py on generated tables: it takes as bases the tables that are not the panel's, with
    1,000 normal rows or more (a smaller one is left out), plants every type and share and the spikes on each, and
    its table reports both families, every type by share and the spikes each method misses."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "odds_adbench"
    folder.mkdir(parents=True)
    for name, normal_rows in (("1_big", 1000), ("2_big", 1200), ("3_small", 400)):
        normal, anomalies = rng.normal(size=(normal_rows, 4)), rng.normal(loc=6.0, size=(30, 4))
        np.savez(folder / f"{name}.npz", X=np.vstack([normal, anomalies]), y=np.r_[np.zeros(normal_rows), np.ones(30)])
    bench("unseen_bases", "--work", tmp_path / "runs" / "a", "--methods", "deepuad", "iforest", "--epochs", 1,
          "--data-dir", tmp_path / "data", cwd=tmp_path)
    bench("unseen_bases", "--table-only", "--work", tmp_path / "runs" / "a", "--results", tmp_path,
          "--data-dir", tmp_path / "data", cwd=tmp_path)
    runs = list(csv.DictReader((tmp_path / "unseen_bases.csv").open()))
    assert {r["dataset"].split("+")[0] for r in runs} == {"1_big", "2_big"} and len(runs) == 2 * 17 * 2
    body = {row[0]: row for row in table(tmp_path / "unseen_bases.md")}
    assert body["synthetic"][1] == "32" and body["spikes"][1] == "2" and body["clustered_20"][1] == "2"
    assert all(0 <= number(cell) <= 40 for cell in body["spikes missed"][1:])
    # bench/unseen_parts.py on the same bases: its cached default is the package's run, set by set
    for part in ("0/2", "1/2"):
        bench("unseen_parts", "--part", part, "--cache", tmp_path / "cache", "--data-dir", tmp_path / "data",
              "--results", tmp_path, "--epochs", 1, cwd=tmp_path)
    bench("unseen_parts", "--table-only", "--data-dir", tmp_path / "data", "--results", tmp_path, cwd=tmp_path)
    parts = list(csv.DictReader((tmp_path / "unseen_parts.csv").open()))
    assert sorted(r["dataset"] for r in parts) == sorted({r["dataset"] for r in runs})
    package = {r["dataset"]: float(r["auroc"]) for r in runs if r["method"] == "deepuad"}
    assert all(abs(float(r["default"]) - package[r["dataset"]]) < 1e-6 for r in parts)
    assert "| spikes | 2 |" in (tmp_path / "unseen_parts.md").read_text()
    # bench/family_gaps.py on the same runs: deepuad less the peer per family and type, its interval around it
    bench("family_gaps", "--csv", tmp_path / "unseen_bases.csv", "--half", "all", "--out", "gaps.md", cwd=tmp_path)
    gaps = {row[0]: row for row in table(tmp_path / "gaps.md")}
    assert gaps["synthetic"][1] == "32" and gaps["clustered_20"][1] == "2" and len(gaps["spikes"]) == 3
    for cell in (gaps["synthetic"][2], gaps["spikes"][2]):
        mean, low, high = (float(v) for v in re.findall(r"[-+]\d\.\d+", cell))
        assert low <= mean <= high


def test_cost(tmp_path, shared_data):
    need(shared_data, ODDS)
    bench("cost", "--datasets", "45_wine", "--reps", 1, "--results", tmp_path / "results", cwd=tmp_path)
    rows = table(tmp_path / "results" / "cost.md")
    assert [r[0] for r in rows] == ["45_wine"] and number(rows[0][1]) == 129
    assert all(number(c) > 0 for c in rows[0][2:7])
    assert number(rows[0][6]) == pytest.approx(sum(number(c) for c in rows[0][2:6]), abs=0.3)
    imports = [float(v) for v in rows[0][8].split(" / ")]  # cluster / train / score, then their sum
    assert len(imports) == 3 and all(v > 0 for v in imports) and number(rows[0][9]) == pytest.approx(sum(imports), abs=0.3)


def test_distributed(kdd, tmp_path):
    """torchrun with 2 processes (gloo on CPU), section 1 only, one rep."""
    split = kdd["split"]
    bench("distributed", "--features", split / "train.features.h5", "--clusters", split / "clusters.h5", "--processes", 2,
          "--reps", 1, "--short-epochs", 1, "--long-epochs", 2, "--skip-whole", "--workdir", tmp_path / "work",
          "--out", tmp_path / "distributed.md", cwd=tmp_path)
    rows = table(tmp_path / "distributed.md")
    assert [r[0] for r in rows] == ["2"] and rows[0][3] == "1.00x"
    assert re.fullmatch(r"-?\d+\.\d\d", rows[0][1]) and re.fullmatch(r"-?\d+\.\d", rows[0][4])  # s / epoch, start-up s
    results = json.loads((tmp_path / "distributed.json").read_text())["results"]
    assert len(results["2"]["raw"]["short"]) == len(results["2"]["raw"]["long"]) == 1


def test_speed(tmp_path):
    """Section 1 (epoch throughput) on synthetic data; section 2 needs PyOD (not a test dependency)."""
    bench("speed", "--data", "synthetic", "--rows", 3000, "--sections", "epoch", "--reps", 1,
          "--workdir", tmp_path / "work", "--out", tmp_path / "speed.md", cwd=tmp_path)
    rows = table(tmp_path / "speed.md")
    target = next(r for r in rows if r[0] == "1")
    assert target[1].startswith("training-epoch throughput") and number(target[4]) > 0 and target[6] in ("yes", "**no**")
    report = json.loads((tmp_path / "speed.json").read_text())
    # this checkout's package (recorded relative to the checkout), not an installed one
    assert report["deepuad_imported_from"] == "deepuad"
    assert report["data"]["rows"] == 3000 and report["epoch"]["throughput_ratio"] > 0
    assert not (tmp_path / "work").exists()  # removed without --keep


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="bench/memory.py measures with /usr/bin/time -v")
def test_memory(tmp_path):
    """Section 2 (extract a generated CSV): the cheapest section (score/cluster need a model first)."""
    bench("memory", "--sections", "extract", "--csv-rows", 3000, "--workdir", tmp_path / "work", "--out", tmp_path / "memory.md",
          cwd=tmp_path)
    rows = table(tmp_path / "memory.md")
    (row,) = [r for r in rows if r[0].startswith("`extract")]
    assert row[2] == "3,000" and number(row[4]) > 0  # rows, peak RSS MiB
    report = json.loads((tmp_path / "memory.json").read_text())
    assert report["extract"]["summary"]["rows"] == 3000 and "error" not in report["extract"]


def test_distribution_speed(tmp_path, shared_data):
    need(shared_data, CIFAR)
    bench("distribution_speed", "--limit", 2000, "--sizes", 3000, "--skip-sensitivity", "--out", tmp_path / "ds.md", cwd=tmp_path)
    rows = table(tmp_path / "ds.md")
    sizes = [r for r in rows if len(r) == 10]  # rows | wall s | CPU s | peak RSS | ... | seeds grown
    assert [r[0] for r in sizes] == ["2,000", "3,000"] and all(number(r[3]) > 0 and number(r[6]) > 0 for r in sizes)
    sensitivity = [r for r in rows if len(r) == 7]
    assert [(r[0], r[1]) for r in sensitivity] == [("l2", "0.06")]


def test_crafted_cost(tmp_path, shared_data):
    need(shared_data, ODDS)
    bench("crafted_cost", "--widths", 3, "--rows", 8000, "--tables", Path(ODDS).name, "--no-kddcup", "--cases", 1,
          "--narrow", "", "--out", tmp_path / "crafted_cost.md", cwd=tmp_path)
    rows = table(tmp_path / "crafted_cost.md")
    assert [r[:3] for r in rows[:2]] == [["3", "1", "8,000"], ["3", "2", "8,000"]] and all(number(r[3]) > 0 for r in rows[:2])
    assert [r[0] for r in rows[2:4]] == ["KDDCUP sample (5,000 rows)", Path(ODDS).name] and number(rows[2][4]) > 1
    assert rows[4][:2] == ["features: score", "0"] and number(rows[4][2]) < 10 and number(rows[4][5]) > 0


def test_wide_spike_strokes(tmp_path):
    """bench/wide_spike_strokes.py on its generated pixel-like rows: one row per data seed, the default taking its
    wide-data parts, every recall a share of the 20 spikes."""
    bench("wide_spike_strokes", "--results", tmp_path, cwd=tmp_path)
    rows = table(tmp_path / "wide_spike_strokes.md")
    assert [row[0] for row in rows] == ["2", "5", "8"] and all(row[1] == "knn+l2+cosine" for row in rows)
    assert all(0 <= number(cell) <= 1 and number(cell) * 20 == round(number(cell) * 20) for row in rows for cell in row[2:])
