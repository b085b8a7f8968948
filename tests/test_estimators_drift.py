"""Drift: the PSI per column against the training data's bins (deepuad/estimators/drift.py), the
reference stored in the model, the summary stored in the scores file, and score --fail-on-drift."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from helpers import KDD_SAMPLE, cli, run_cli
from deepuad.estimators import drift


# =========================================================================== the measure
def test_same_distribution_is_stable_and_a_shifted_column_is_named():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(4000, 3))
    scores = rng.normal(size=4000)
    reference = drift.fit_reference(train, scores, cut=np.inf)
    today = rng.normal(size=(3000, 3))
    today[:, 2] *= 1000  # a changed unit
    counter = drift.DriftCounter(reference, len(today))
    counter.add(today, rng.normal(size=3000), 0)
    column_psi, score_psi, on_normal = counter.result(rng.normal(size=3000))
    assert column_psi[:2].max() < 0.05 and score_psi < 0.05
    assert column_psi[2] > 1
    assert on_normal


def test_zeros_keep_a_bin_of_their_own_and_constant_columns_do_not_break():
    X = np.zeros((1000, 2))
    X[900:, 0] = np.arange(1, 101)  # 90 % zeros
    edges = drift.bin_edges(X)
    assert edges.shape == (2, drift.N_BINS - 1) and (np.diff(edges, axis=1) >= 0).all()
    counts = drift.tally(drift.bin_indices(X, edges), drift.N_BINS)
    assert counts[0, 0] == 900 and counts.sum(axis=1).tolist() == [1000, 1000]
    assert counts[1, 0] == 1000  # the constant column: every row in one bin
    moved = X.copy()
    moved[:, 1] = 1.0  # the constant changes
    assert drift.psi(drift.shares(counts), drift.tally(drift.bin_indices(moved, edges), drift.N_BINS))[1] > 5


def test_counting_every_sth_row_in_chunks_equals_counting_them_at_once():
    rng = np.random.default_rng(1)
    X = rng.exponential(size=(1000, 4))
    reference = drift.fit_reference(X, np.zeros(1000), cut=1.0)
    counter = drift.DriftCounter(reference, len(X), at_most=300)  # stride 4
    for begin in range(0, 1000, 333):  # chunks that do not line up with the stride
        counter.add(X[begin:begin + 333], np.zeros(len(X[begin:begin + 333])), begin)
    assert counter.stride == 4 and counter.rows == 250
    assert (counter.counts == drift.tally(drift.bin_indices(X[::4], reference["edges"]), drift.N_BINS)).all()


def test_anomalies_set_aside_by_their_scores_are_not_drift():
    """A bad night: many rows far away, and scored high. The rows scoring at most the model's
    threshold are compared, so the columns show little drift while the score moves."""
    rng = np.random.default_rng(2)
    train = rng.normal(size=(5000, 2))
    train_scores = np.abs(train).sum(axis=1)
    cut = float(np.quantile(train_scores, 0.95))
    reference = drift.fit_reference(train, train_scores, cut)
    normal = rng.normal(size=(2000, 2))
    anomalies = rng.uniform(5, 9, size=(800, 2))
    today = np.vstack([normal, anomalies])
    today_scores = np.abs(today).sum(axis=1)
    counter = drift.DriftCounter(reference, len(today))
    counter.add(today, today_scores, 0)
    column_psi, score_psi, on_normal = counter.result(today_scores)
    assert on_normal and column_psi.max() < 0.1 and score_psi > drift.ACT_ABOVE
    # the same rows all compared (as if every row were normal) drift far beyond it
    assert drift.psi(reference["proportions"], counter.counts).max() > drift.ACT_ABOVE


def test_by_column_reports_a_one_hot_group_once_with_its_category():
    column_psi = np.array([0.01, 0.3, 0.02, 0.5])
    groups = [("bytes", 0, 1), ("service", 1, 4)]
    names = ["bytes", "service=http", "service=ftp", "service=ecr_i"]
    assert drift.by_column(column_psi, groups, names) == [
        {"column": "service", "psi": 0.5, "feature": "service=ecr_i"}, {"column": "bytes", "psi": 0.01, "feature": "bytes"}]


# =========================================================================== through the commands
@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """The KDD sample split at random into two days: a model trained on day 1; day 2 as it is,
    and with src_bytes in other units (x1000)."""
    folder = tmp_path_factory.mktemp("days")
    data = pd.read_csv(KDD_SAMPLE)
    first = np.random.default_rng(0).random(len(data)) < 0.5
    data[first].to_csv(folder / "day1.csv", index=False)
    data[~first].to_csv(folder / "day2.csv", index=False)
    units = data[~first].copy()
    units["src_bytes"] *= 1000
    units.to_csv(folder / "units.csv", index=False)
    steps = [("extract", folder / "day1.csv", "--label-column", "label", "--anomaly-values", "normal."),
             ("cluster", folder / "day1.features.h5"),
             ("train", folder / "day1.features.h5", folder / "day1.clusters.h5", "--epochs", "4", "--r", "2")]
    for day in ("day2", "units"):
        steps.append(("extract", folder / f"{day}.csv", "--like", folder / "day1.features.h5", "-o", folder / f"{day}.features.h5"))
    for step in steps:
        code, _, err = cli("--quiet", *step)
        assert code == 0, (step[0], err)
    return folder


def test_unchanged_day_passes_and_a_changed_unit_fails_naming_its_column(days, capsys):
    model = days / "day1.model.h5"
    code, out, err = run_cli(capsys, "score", model, days / "day2.features.h5", "--fail-on-drift", "0.25", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["drift_max_psi"] < 0.25
    code, out, err = run_cli(capsys, "score", model, days / "units.features.h5", "--fail-on-drift", "0.25", "--json")
    assert code == 9
    assert json.loads(out)["drift_columns"].startswith("src_bytes ")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"deepuad: error: {days / 'units.scores.h5'}: the data drifted")
    assert "src_bytes (PSI" in lines[0] and "count (PSI" not in lines[0]
    stored = json.loads(run_cli(capsys, "inspect", days / "units.scores.h5", "--json")[1])
    assert stored["drift"]["columns"][0]["column"] == "src_bytes" and stored["drift"]["columns"][0]["psi"] > 1
    assert stored["summary"]["drift_max_psi"] == stored["drift"]["max_psi"]
    assert any(d["name"] == "drift_psi" for d in stored["datasets"])
    code, out, _ = run_cli(capsys, "inspect", days / "units.scores.h5")
    assert code == 0 and "src_bytes" in out and "drift" in out


def test_the_model_holds_a_small_reference(days, capsys):
    with h5py.File(days / "day1.model.h5") as f:
        group = f["drift_reference"]
        n_features = f["weights/encoder.0.weight"].shape[1]
        assert group["edges"].shape == (n_features, drift.N_BINS - 1)
        assert group["proportions"].shape == (n_features, drift.N_BINS)
        assert 0 < group.attrs["rows"] <= drift.REFERENCE_ROWS
        assert sum(group[name].nbytes for name in group) <= n_features * 2 * drift.N_BINS * 8 + 2 * drift.N_BINS * 8
    info = json.loads(run_cli(capsys, "inspect", days / "day1.model.h5", "--json")[1])
    assert any(d["name"] == "drift_reference/edges" and d["description"] for d in info["datasets"])


@pytest.mark.parametrize("batch_rows", [[], ["--batch-rows", "1000"]])  # train's stored scores; the network's
def test_the_training_rows_themselves_are_not_measured(days, tmp_path, capsys, batch_rows):
    code, out, err = run_cli(capsys, "score", days / "day1.model.h5", days / "day1.features.h5", "-o", tmp_path / "self.scores.h5",
                             "--fail-on-drift", "0.25", "--json", *batch_rows)
    assert code == 0, err
    assert "drift_max_psi" not in json.loads(out)
    info = json.loads(run_cli(capsys, "inspect", tmp_path / "self.scores.h5", "--json")[1])
    assert info["summary"]["drift"] == "not measured: these are the rows the model was trained on"
    assert not any(d["name"] == "drift_psi" for d in info["datasets"])


def test_fail_on_drift_refusals_write_nothing(days, tmp_path, capsys):
    model, features = days / "day1.model.h5", days / "day2.features.h5"
    for bad in (["--fail-on-drift", "0"], ["--fail-on-drift", "0.2", "--shard", "0/2"]):
        code, _, err = run_cli(capsys, "score", model, features, "-o", tmp_path / "s.h5", *bad)
        assert code == 2 and "--fail-on-drift" in err and not (tmp_path / "s.h5").exists()
    old = tmp_path / "old.model.h5"
    shutil.copy(model, old)
    with h5py.File(old, "a") as f:  # a model made before the reference was stored
        del f["drift_reference"]
    code, _, err = run_cli(capsys, "--quiet", "score", old, features, "-o", tmp_path / "s.h5", "--fail-on-drift", "0.25")
    assert code == 3 and err.startswith(f"deepuad: error: {old}: holds no drift reference") and err.count("\n") == 1
    assert not (tmp_path / "s.h5").exists()
    code, out, _ = run_cli(capsys, "score", old, features, "-o", tmp_path / "s.h5", "--json")  # without the option: scored
    assert code == 0 and "drift_max_psi" not in json.loads(out)
    info = json.loads(run_cli(capsys, "inspect", tmp_path / "s.h5", "--json")[1])
    assert info["summary"]["drift"].startswith("not measured: the model holds no drift reference")


@pytest.mark.parametrize("damage", ["unordered", "shape", "cut"])
def test_a_corrupt_reference_is_one_line(days, tmp_path, capsys, damage):
    bad = tmp_path / "bad.model.h5"
    shutil.copy(days / "day1.model.h5", bad)
    with h5py.File(bad, "a") as f:
        group = f["drift_reference"]
        if damage == "unordered":
            edges = group["edges"][()]
            edges[0] = edges[0][::-1] + np.arange(edges.shape[1])[::-1]
            group["edges"][...] = edges
        elif damage == "shape":
            del group["proportions"]
            group["proportions"] = np.full((3, 3), 1 / 3)
        else:
            group.attrs["cut"] = np.nan
    code, _, err = run_cli(capsys, "--quiet", "score", bad, days / "day2.features.h5", "-o", tmp_path / "s.h5")
    assert code == 3 and err.startswith(f"deepuad: error: {bad}: ") and "drift_reference" in err and err.count("\n") == 1
    assert not (tmp_path / "s.h5").exists()


def test_a_corrupt_drift_summary_is_one_line(days, tmp_path, capsys):
    scores = tmp_path / "s.h5"
    assert run_cli(capsys, "score", days / "day1.model.h5", days / "day2.features.h5", "-o", scores)[0] == 0
    with h5py.File(scores, "a") as f:
        summary = json.loads(f.attrs["drift"])
        summary["columns"][0]["psi"] = "high"
        f.attrs["drift"] = json.dumps(summary)
    code, _, err = run_cli(capsys, "inspect", scores)
    assert code == 3 and "attribute 'drift" in err and err.count("\n") == 1


def test_nightly_tells_a_bad_night_from_a_stale_model(days, tmp_path):
    """examples/nightly.sh: another day of the same data, with a fifth of it flagged, is a bad
    night (exit 8); the same day with src_bytes in other units is a stale model (exit 9) and the
    message names the column."""
    script = Path(__file__).resolve().parent.parent / "examples" / "nightly.sh"
    assert cli("--quiet", "score", days / "day1.model.h5", days / "day1.features.h5", "-o", days / "day1.scores.h5")[0] == 0
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    results = {}
    for day in ("day2", "units"):
        results[day] = subprocess.run(["bash", script, days / f"{day}.csv", days / "day1.features.h5", days / "day1.model.h5",
                                       days / "day1.scores.h5", tmp_path / "out"], env=env, capture_output=True, text=True,
                                      timeout=300)
        assert (tmp_path / "out" / f"{day}.anomalies.csv").exists()
    assert results["day2"].returncode == 8, results["day2"].stderr
    assert "nightly: BAD NIGHT" in results["day2"].stderr and "src_bytes" not in results["day2"].stderr
    assert results["units"].returncode == 9, results["units"].stderr
    stale = [line for line in results["units"].stderr.splitlines() if line.startswith("nightly:")]
    assert len(stale) == 1 and stale[0].startswith("nightly: STALE MODEL: the data moved away from the training data in src_bytes (PSI")
