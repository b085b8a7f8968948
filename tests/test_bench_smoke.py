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

import h5py
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
    need(shared_data, KDD)
    bench("panel", "--datasets", "4_breastw", "kddcup_5", "--methods", "deepuad", "deepuad-paper", "iforest", "--seeds", 0, 1,
          "--max-rows", 300, "--epochs", 1, "--results", tmp_path / "results", cwd=tmp_path)
    runs = list(csv.DictReader((tmp_path / "results" / "panel.csv").open()))
    # two data sets x three random methods x two seeds, every AUROC a probability
    assert len(runs) == 12 and {r["dataset"] for r in runs} == {"4_breastw", "kddcup_5"}
    assert all(0 <= float(r["auroc"]) <= 1 and float(r["seconds"]) >= 0 for r in runs)
    assert {int(r["rows_fit"]) for r in runs} == {300}
    assert {(r["dataset"], r["family"], r["half"]) for r in runs} == {("4_breastw", "tables", "held-out"), ("kddcup_5", "kddcup", "tuning")}
    text = (tmp_path / "results" / "panel.md").read_text()
    # each half reports its one set, and the share table its two
    assert text.count("1 data sets finished for every method.") == 2
    assert "| deepuad | tuning | 1 |" in text and "| deepuad | held-out | 1 |" in text
    # --resume skips every finished run: nothing is appended
    bench("panel", "--datasets", "4_breastw", "kddcup_5", "--methods", "deepuad", "deepuad-paper", "iforest", "--seeds", 0, 1,
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


def test_score_selection(tmp_path, shared_data):
    need(shared_data, ODDS)
    bench("score_selection", "--datasets", "4_breastw", "15_Hepatitis", "--epochs", 2, "--max-rows", 300,
          "--results", tmp_path / "results", cwd=tmp_path)
    runs = list(csv.DictReader((tmp_path / "results" / "panel_selection.csv").open()))
    assert [(r["dataset"], r["half"]) for r in runs] == [("4_breastw", "held-out"), ("15_Hepatitis", "tuning")]
    assert all(0 <= float(v) <= 1 for r in runs for k, v in r.items() if k not in ("dataset", "half"))
    text = (tmp_path / "results" / "panel_selection.md").read_text()
    assert "## tuning half (1 sets)" in text and "## held-out half (1 sets)" in text and "| log-l2+iforest |" in text


def test_cost(tmp_path, shared_data):
    need(shared_data, ODDS)
    bench("cost", "--datasets", "45_wine", "--reps", 1, "--results", tmp_path / "results", cwd=tmp_path)
    rows = table(tmp_path / "results" / "cost.md")
    assert [r[0] for r in rows] == ["45_wine"] and number(rows[0][1]) == 129
    assert all(number(c) > 0 for c in rows[0][2:7])
    assert number(rows[0][6]) == pytest.approx(sum(number(c) for c in rows[0][2:6]), abs=0.3)
    imports = [float(v) for v in rows[0][8].split(" / ")]  # cluster / train / score, then their sum
    assert len(imports) == 3 and all(v > 0 for v in imports) and number(rows[0][9]) == pytest.approx(sum(imports), abs=0.3)


def test_gmm_speed(tmp_path, shared_data):
    need(shared_data, "odds_adbench/45_wine.npz")
    bench("gmm_speed", "--sets", "45_wine", "--reps", 1, "--out", tmp_path / "gmm_speed.md", cwd=tmp_path)
    rows = table(tmp_path / "gmm_speed.md")
    # set | clustered | rows | columns | fitted on | covariance | iterations | rows labelled differently | s | s | speed-up
    assert [r[1] for r in rows][0] == "rows" and rows[0][5] == "diag" and number(rows[0][2]) == 129
    assert len(rows) >= 2 and all(r[1].startswith("z, re-selection") and r[5] == "full" for r in rows[1:])
    assert all(number(r[7]) == 0 for r in rows)  # scikit-learn's labels, row for row
    assert all(number(r[8]) > 0 and number(r[9]) > 0 for r in rows)


def test_reselect_seed(tmp_path, shared_data):
    need(shared_data, "odds_adbench/15_Hepatitis.npz")
    bench("reselect_seed", "--datasets", "15_Hepatitis", "--epochs", 10, "--seeds", 2, "--caps", 1, 100, "--n-init", 2,
          "--results", tmp_path, cwd=tmp_path)
    rows = table(tmp_path / "reselect_seed.md")
    # set | rows | seed 0 s / iterations | other seeds moved % | their s / iterations | cap 1: moved % / s | cap 100
    assert [r[0] for r in rows] == ["15_Hepatitis"] and number(rows[0][1]) == 80
    assert 1 <= int(rows[0][2].split(" / ")[1]) <= 100 and 0 <= number(rows[0][3]) <= 100
    assert number(rows[0][6].split(" / ")[0]) == 0  # 100 iterations: seed 0's own fit, unchanged
    assert 0 <= number(rows[0][7].split(" / ")[0]) <= 100 and len(rows[0]) == 8  # best of 2 EM starts


def test_kdd_parts(kdd, tmp_path):
    bench("kdd_parts", "--workdir", kdd["split"].parent, "--results", tmp_path, cwd=tmp_path)
    rows = table(tmp_path / "kdd_parts.md")
    # per split: contamination | seed | epochs | ref l2 p95 | six parts "AUROC / AUPRC"; then the means per level
    assert [r[:3] for r in rows[:1]] == [["20 %", "0", "1"]] and len(rows) == 2 and rows[1][0] == "20 % (n=1)"
    cells = rows[0][4:] + rows[1][1:]
    assert len(cells) == 12 and all(0 <= float(v) <= 100 for c in cells for v in c.split(" / "))
    assert rows[0][4:] == rows[1][1:]  # one seed: the mean is that run
    (run,) = csv.DictReader((tmp_path / "kdd_parts.csv").open())
    assert float(run["reference_l2_p95"]) >= 0 and run["stop_reason"] == "epoch budget"


def test_ablations(kdd, tmp_path):
    bench("ablations", "--features-dir", kdd["split"], "--rows", 400, "--epochs", 11, "--variants", "default", "no initial clustering",
          "--results", tmp_path, cwd=tmp_path)
    rows = table(tmp_path / "ablations.md")
    # variant | what | initial set (share) | final AUROC | final AUPRC | epochs, stop | AUROC per re-selection
    assert [r[0] for r in rows] == ["default", "no initial clustering"]
    assert rows[1][2].startswith("400 (")  # all rows
    for row in rows:
        assert 0 <= number(row[3]) <= 100 and 0 <= number(row[4]) <= 100
        assert [0 <= float(a) <= 100 for a in row[6].split()] == [True]  # one re-selection (epoch 10)


def test_reselect_rules(kdd, tmp_path):
    bench("reselect_rules", "--workdir", kdd["split"].parent, "--splits", "c20_s0", "--rules", "error", "--epochs", 1,
          "--out", tmp_path / "rules.md", cwd=tmp_path)
    rows = table(tmp_path / "rules.md")
    assert len(rows) == 1 and rows[0][0] == "c20_s0"
    assert re.fullmatch(r"\d+\.\d / \d+\.\d \(1 ep, \d+% kept\)", rows[0][1])
    (row,) = csv.DictReader((tmp_path / "rules.csv").open())
    assert row["rule"] == "error" and row["epochs"] == "1"


def test_left_out_errors(kdd, tmp_path):
    bench("left_out_errors", "--split", kdd["split"], "--model", "model.h5", "--out", tmp_path / "errors.md", cwd=tmp_path)
    rows = table(tmp_path / "errors.md")
    assert [r[0] for r in rows] == ["selected normal", "normal left out", "anomaly"]
    with h5py.File(kdd["split"] / "train.features.h5") as f:
        assert sum(int(r[1]) for r in rows) == f["X"].shape[0]  # the three groups partition the train rows
    assert all(0 <= float(v) <= 2 for r in rows if int(r[1]) for v in r[2:])  # cosine errors lie in [0, 2]


def test_ddp_agreement(kdd, tmp_path):
    """1 vs 2 processes (torchrun, gloo) on the tiny split's train rows, error rule only."""
    bench("ddp_agreement", "--input", kdd["split"] / "train.csv", "--rules", "error", "--workdir", tmp_path / "work",
          "--out", tmp_path / "agreement.md", cwd=tmp_path)
    (row,) = table(tmp_path / "agreement.md")
    assert row[0] == "error" and 0 <= float(row[3]) <= 2 and all(0 <= float(v) <= 1 for v in row[4:6])


def test_reselect_shortcut(kdd, tmp_path):
    done = bench("reselect_shortcut", "--split", kdd["split"], "--epochs", 11, "--caps", 0, 300, cwd=tmp_path)
    lines = re.findall(r"reselect_fit_sample=(\w+): test AUROC ([\d.]+) AUPRC ([\d.]+), (\d+) epochs", done.stdout)
    assert [line[0] for line in lines] == ["all", "300"]
    assert all(0 <= float(a) <= 1 and 0 <= float(b) <= 1 for _, a, b, _ in lines)


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


def test_adam_step(tmp_path):
    bench("adam_step", "--steps", 5, "--reps", 2, "--out", tmp_path / "adam_step.md", cwd=tmp_path)
    rows = table(tmp_path / "adam_step.md")
    assert [r[0] for r in rows] == ["loop (torch's default on CPU)", "foreach (DeepUAD)"]
    assert all(len(r[1].split(" / ")) == 2 and number(r[2]) > 0 for r in rows)
    assert "the same, bit for bit," in (tmp_path / "adam_step.md").read_text()
