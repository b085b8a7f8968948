"""explain names the column that was spiked, never a categorical column holding its expected value.

A server-metrics table: 600 rows, hostname (12 hosts) sets cpu, mem and latency; req is a
count. Four rows get a latency of 5,000 ms (150-200 is normal for every host) and three a
request count of 2,000 (about 200 is normal), next to a hostname they keep. Min-max scaling
squeezes the normal latencies into 2 % of the column's range, so the reconstruction error of
hostname's 12 one-hot columns outweighed the spike's: the explanation blamed hostname first,
even where it held the host the model expected, and said nothing of the isolation forest that
drives the default score."""

import json

import numpy as np
import pandas as pd
import pytest

from helpers import cli, run_cli

LATENCY_SPIKES = [100, 200, 300, 400]
REQ_SPIKES = [150, 250, 500]


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics")
    rng = np.random.default_rng(0)
    host = rng.integers(0, 12, 600)
    cpu_level = np.linspace(10, 60, 12)[host]
    table = pd.DataFrame({"hostname": [f"h{i}" for i in host], "cpu": cpu_level + rng.normal(0, 5, 600),
                          "mem": 40 + 0.5 * cpu_level + rng.normal(0, 3, 600),
                          "latency": 150 + 0.8 * cpu_level + rng.normal(0, 10, 600), "req": rng.poisson(200, 600)})
    table.loc[LATENCY_SPIKES, "latency"] = 5000.0
    table.loc[REQ_SPIKES, "req"] = 2000
    table.round(3).to_csv(folder / "metrics.csv", index=False)
    code, _, err = cli("--quiet", "run", folder / "metrics.csv", "-o", folder / "out", "--epochs", "40", "--seed", "0")
    assert code == 0, err
    return folder, table


def explained(capsys, folder, rows):
    code, out, err = run_cli(capsys, "explain", folder / "out" / "model.h5", folder / "out" / "features.h5",
                             "--rows", ",".join(map(str, rows)), "-k", "5", "--json")  # 5: every column
    assert code == 0, err
    return json.loads(out)["rows"]


def test_the_spiked_column_comes_first_with_a_normal_expected_value(metrics, capsys):
    folder, table = metrics
    for entry in explained(capsys, folder, LATENCY_SPIKES + REQ_SPIKES):
        first = entry["columns"][0]
        spiked, normal = ("latency", (150, 205)) if entry["id"] in LATENCY_SPIKES else ("req", (150, 250))
        assert first["column"] == spiked, entry
        assert first["value"] == table.loc[entry["id"], spiked]
        assert normal[0] <= first["expected"] <= normal[1], entry  # what the host's normal rows hold, not the spike
        assert first["contribution"] > 0 and first["share"] == max(c["share"] for c in entry["columns"])
        assert first["parts"]["tails"] > 0  # the tails part, per column like the range, is split too


def test_a_category_holding_its_expected_value_is_never_blamed(metrics, capsys):
    folder, table = metrics
    entries = explained(capsys, folder, LATENCY_SPIKES + REQ_SPIKES + list(range(10)))
    held = 0
    for entry in entries:
        (host,) = [c for c in entry["columns"] if c["column"] == "hostname"]
        assert host["value"] == table.loc[entry["id"], "hostname"]
        if host["value"] == host["expected"]:
            held += 1
            assert host["contribution"] == 0.0 and host["share"] == 0.0, entry
            assert entry["columns"][0]["column"] != "hostname" or entry["columns"][0]["contribution"] == 0.0
    assert held >= 3  # the case the test is about does occur


def test_every_part_of_the_score_is_attributed(metrics):
    """Whatever parts a detector's score has: here the isolation forest alone, which the
    reconstruction error says nothing about, fitted on the same features."""
    from deepuad import DeepUAD
    from deepuad.estimators.explain import explain_rows
    from deepuad.stages.answers import read_rows

    folder, _ = metrics
    data = read_rows(folder / "out" / "features.h5", np.arange(600))
    forest = DeepUAD(score="iforest", epochs=4, r=2, seed=0).fit(data["X"])
    assert forest.score_parts_ == ("iforest",)
    rows = LATENCY_SPIKES + REQ_SPIKES
    for row, entry in zip(rows, explain_rows(forest, data["X"][rows], data["decoder"], k=1)):
        assert entry["columns"][0]["column"] == ("latency" if row in LATENCY_SPIKES else "req"), entry
        assert entry["columns"][0]["contribution"] > 0
