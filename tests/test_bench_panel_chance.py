"""bench/panel.py's chance band: which AUROCs under 0.5 are below what a random ranking gives;
and the seeds each method ran per set.

The README's claim about the sets under 0.5 rests on it, so it is checked against random rankings
and through the table that panel.md is written from (no data needed: a made-up panel.csv)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

PANEL = Path(__file__).resolve().parents[1] / "bench" / "panel.py"


@pytest.fixture
def panel(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # panel.py sets it for itself; keep it out of the other tests
    spec = importlib.util.spec_from_file_location("panel_under_test", PANEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("rows, anomalies", [(240, 30), (2000, 59), (1484, 507)])
def test_the_band_holds_95_percent_of_random_rankings(panel, rows, anomalies):
    rng = np.random.default_rng(0)
    band = panel.chance_band(rows, anomalies / rows)
    ranks = np.argsort(rng.random((4000, rows)), axis=1) + 1  # a random ranking: each row a permutation of 1..rows
    rank_sum = ranks[:, :anomalies].sum(axis=1)  # the first `anomalies` rows are the anomalies
    auroc = (rank_sum - anomalies * (anomalies + 1) / 2) / (anomalies * (rows - anomalies))
    outside = np.mean(np.abs(auroc - 0.5) > band)
    assert 0.035 < outside < 0.065


def test_the_table_marks_only_the_aurocs_below_the_band(panel, tmp_path):
    csv_path, md_path = tmp_path / "panel.csv", tmp_path / "panel.md"
    runs = [("small", 240, 0.125, "deepuad", 0.36), ("small", 240, 0.125, "iforest", 0.42),  # band +-0.111
            ("large", 1484, 507 / 1484, "deepuad", 0.45), ("large", 1484, 507 / 1484, "iforest", 0.48)]  # band +-0.031
    runs = [(*run, 0) for run in runs] + [("small", 240, 0.125, "deepuad", 0.36, 1)]  # a second seed on one set only
    with csv_path.open("w", newline="") as out:
        writer = csv.DictWriter(out, panel.FIELDS, restval="")
        writer.writeheader()
        for name, rows, share, method, auroc, seed in runs:
            writer.writerow({"dataset": name, "family": "tables", "half": "tuning" if name == "small" else "held-out", "rows_fit": rows, "rows_scored": rows, "features": 6,
                             "anomaly_share": share, "method": method, "seed": seed, "auroc": auroc, "auprc": 0.1,
                             "seconds": 1.0})
    panel.write_table(csv_path, md_path)
    text = md_path.read_text()
    assert "| small | 240 | 30 | 0.5 ± 0.111 | 0.360 ▼ | 0.420 |" in text
    assert "| large | 1484 | 507 | 0.5 ± 0.031 | 0.450 ▼ | 0.480 |" in text
    # deepuad is below chance on both sets (one in each half), iforest on neither
    assert text.count("| sets below chance (under 0.5 by more than the 95 % band of a random ranking) | 1 | 0 |") == 2
    assert "DAGMM is not in the default method list" in text  # none of its runs: the table says why
    # a method with fewer seeds on some sets says so (the union of seeds over sets would read "0, 1")
    assert "Seeds run per set: deepuad 0, 1 on 1 set, fewer on 1 (large); iforest 0 on every set." in text
