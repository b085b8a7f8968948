"""examples/nightly.sh and score --fail-above: the cron path from a new file to an alert."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from conftest import cli, make_table, run_cli

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


def test_nightly_script_alerts_and_writes_the_anomalies(reference, tmp_path):
    folder, threshold = reference
    ref = folder / "ref"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", SCRIPT, folder / "bad-day.csv", ref / "features.h5", ref / "model.h5", ref / "scores.h5",
                             tmp_path / "out", "0.1"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 8, result.stderr
    assert "--fail-above" in result.stderr
    rows = list(csv.DictReader(open(tmp_path / "out" / "bad-day.anomalies.csv")))
    with h5py.File(tmp_path / "out" / "bad-day.scores.h5") as f:
        assert f.attrs["threshold"] == pytest.approx(threshold)
        flagged = int(f["is_anomaly"][()].sum())
    assert len(rows) == flagged > 0.1 * 250
    assert {"proto", "a", "score", "id"} <= set(rows[0]) and {r["proto"] for r in rows} <= {"tcp", "udp", "icmp"}
    assert sum(r["y"] == "1" for r in rows) > len(rows) / 2  # mostly the planted anomalies
    # no arguments: the usage, exit 2
    result = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "nightly.sh TODAY" in result.stderr
