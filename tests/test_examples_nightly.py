"""examples/nightly.sh and score --fail-above: the cron path from a new file to an alert."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import cli, make_table, run_cli

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "nightly.sh"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nightly")
    make_table(folder / "ref.csv")
    code, _, err = cli("--quiet", "run", folder / "ref.csv", "-o", folder / "ref", "--label-column", "label",
                       "--anomaly-values", "bad", "--epochs", "6", "--r", "3", "--seed", "0")
    assert code == 0, err
    make_table(folder / "quiet-day.csv", n_normal=300, n_anomaly=0, seed=7)
    make_table(folder / "bad-day.csv", n_normal=150, n_anomaly=100, seed=8)
    with h5py.File(folder / "ref" / "scores.h5") as f:
        threshold = float(f.attrs["threshold"])
    return folder, threshold


def test_fail_above_exits_8_after_writing_the_scores(reference, capsys):
    folder, threshold = reference
    ref = folder / "ref"
    for day, share, expected in (("quiet-day", "0.1", 0), ("bad-day", "0.1", 8)):
        code, _, err = run_cli(capsys, "--quiet", "extract", folder / f"{day}.csv", "--like", ref / "features.h5",
                               "-o", folder / f"{day}.features.h5")
        assert code == 0, err
        code, out, err = run_cli(capsys, "score", ref / "model.h5", folder / f"{day}.features.h5", "-o", folder / f"{day}.scores.h5",
                                 "--threshold", threshold, "--fail-above", share, "--json")
        summary = json.loads(out)
        assert code == expected, err
        share_flagged = summary["anomalies_flagged"] / summary["rows"]
        assert (share_flagged > 0.1) == (expected == 8)
        assert (folder / f"{day}.scores.h5").exists()
        if expected:
            assert err.startswith("deepuad: error:") and "--fail-above" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "score", ref / "model.h5", ref / "features.h5", "-o", folder / "x.h5", "--fail-above", "0.05")
    assert code == 2 and "--threshold" in err and not (folder / "x.h5").exists()
    code, _, err = run_cli(capsys, "score", ref / "model.h5", ref / "features.h5", "-o", folder / "x.h5", "--threshold", "1",
                           "--fail-above", "1.5")
    assert code == 2 and not (folder / "x.h5").exists()


def server_metrics(path, day: int, n: int, planted: list[int], seed: int) -> list[dict]:
    """A day of server metrics, one row per host every 5 minutes: timestamp, hostname, cpu, mem,
    latency_ms, status; a few gaps (empty cells) and, at the ``planted`` rows, a latency spike
    with a saturated CPU. Returns the rows as written."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        host = f"web{i % 4 + 1:02d}"
        minutes = 5 * (i // 4)
        row = {"timestamp": f"2026-12-{day:02d}T{minutes // 60:02d}:{minutes % 60:02d}:00", "hostname": host,
               "cpu": f"{rng.normal(30 + 5 * (i % 4), 2):.1f}", "mem": f"{rng.normal(60, 3):.1f}",
               "latency_ms": f"{rng.normal(150, 8):.0f}", "status": "ok" if rng.random() > 0.1 else "degraded"}
        if i in planted:
            row.update(cpu="99.0", latency_ms=f"{rng.uniform(4000, 6000):.0f}")
        if rng.random() < 0.03:  # a gap the collector left
            row[str(rng.choice(["cpu", "mem", "status"]))] = ""
        rows.append(row)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_nightly_script_flags_rows_of_a_file_with_gaps_by_host_and_time(tmp_path):
    """The cron path on server metrics with gaps: a reference made with --missing fill and two
    id columns, today's file (gaps too) encoded like it, and the flagged rows written with their
    hostname and timestamp."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server_metrics(tmp_path / "ref.csv", 1, 400, planted=[33, 250], seed=0)
    code, _, err = cli("--quiet", "run", tmp_path / "ref.csv", "-o", tmp_path / "ref", "--missing", "fill", "--id-column",
                       "timestamp,hostname", "--epochs", "6", "--r", "3", "--seed", "0")
    assert code == 0, err
    planted = list(range(5, 200, 5))  # 39 of 200 rows
    today = server_metrics(tmp_path / "day-2.csv", 2, 200, planted=planted, seed=1)
    assert sum("" in row.values() for row in today) >= 3  # the file has gaps
    ref = tmp_path / "ref"
    result = subprocess.run(["bash", SCRIPT, tmp_path / "day-2.csv", ref / "features.h5", ref / "model.h5", ref / "scores.h5",
                             tmp_path / "out", "0.1"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 8, result.stderr
    assert "--fail-above" in result.stderr
    summary = json.loads((tmp_path / "out" / "day-2.extract.json").read_text())
    assert summary["rows"] == 200 and sum(summary["gaps_filled"].values()) >= 1  # filled with the reference's medians
    rows = list(csv.DictReader(open(tmp_path / "out" / "day-2.anomalies.csv")))
    with h5py.File(tmp_path / "out" / "day-2.scores.h5") as f:
        flagged = int(f["is_anomaly"][()].sum())
    assert len(rows) == flagged > 0.1 * 200
    assert list(rows[0])[:4] == ["rank", "id", "timestamp", "hostname"]
    for row in rows:  # each flagged row names its host and time, as the input wrote them
        source = today[int(row["id"])]
        assert (row["timestamp"], row["hostname"]) == (source["timestamp"], source["hostname"])
    assert {int(row["id"]) for row in rows} >= set(planted)  # every planted spike is flagged
    # no arguments: the usage, exit 2
    result = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "nightly.sh TODAY" in result.stderr
