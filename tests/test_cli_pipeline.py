"""End-to-end through the command line: the stages chained, determinism, resume, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from helpers import make_table, run_cli
from deepuad.stages.train import checkpoint_path

TRAIN = ["--tol", "0", "--epochs", "12", "--r", "3", "--batch-size", "32", "--lr", "0.01", "--layers", "6,3", "--reselect-clusters", "5", "--device", "cpu"]


def pipeline(capsys, folder, table, seed=0, train_extra=()):
    f, c, m, s = (folder / n for n in ("f.h5", "c.h5", "m.h5", "s.h5"))
    assert run_cli(capsys, "extract", table, "--label-column", "label", "--anomaly-values", "bad", "-o", f)[0] == 0
    assert run_cli(capsys, "cluster", f, "--p0", "35", "--clusters", "6", "--seed", seed, "-o", c)[0] == 0
    code, out, err = run_cli(capsys, "train", f, c, "-o", m, "--seed", seed, *TRAIN, *train_extra, "--json")
    assert code == 0, err
    code, out, err = run_cli(capsys, "score", m, f, "-o", s, "--json")
    assert code == 0, err
    return f, c, m, s, json.loads(out)


def selections(model):
    with h5py.File(model) as h:
        return [h[f"iterations/{k}/selected"][()] for k in sorted(h["iterations"], key=int)]


def scores(path):
    with h5py.File(path) as h:
        return h["score"][()]


def test_pipeline_end_to_end_writes_every_stage_and_keeps_anomalies_out_of_training(tmp_path, capsys, table):
    f, c, m, s, summary = pipeline(capsys, tmp_path, table)
    # the score is whatever the default of the day is: checked for presence, not for quality
    assert summary["rows"] == 440 and 0 <= summary["auroc"] <= 1 and summary["anomaly_share"] == pytest.approx(40 / 440)
    with h5py.File(m) as h:
        assert h.attrs["complete"] and json.loads(h.attrs["architecture"])["layers"] == [6, 3]
        epochs = json.loads(h.attrs["state"])["epoch"]
        assert len(h["iterations"]) == 1 + epochs // 3  # initial + a re-selection every 3 epochs
        assert h.attrs["stop_reason"] == ("converged" if epochs < 12 else "epoch budget")
        assert "auroc" in h["iterations/1"].attrs  # labels exist: diagnostics recorded
        # every training set, initial and re-selected, holds a smaller anomaly share than the data
        shares = [h[f"iterations/{k}"].attrs["selected_anomaly_share"] for k in h["iterations"]]
        assert max(shares) < 40 / 440 / 2
    code, out, _ = run_cli(capsys, "inspect", m, "--json")
    info = json.loads(out)
    assert code == 0 and info["kind"] == "model" and len(info["iterations"]) == 1 + epochs // 3


def test_same_seed_same_selections_and_scores(tmp_path, capsys, table):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    run_a = pipeline(capsys, tmp_path / "a", table)
    run_b = pipeline(capsys, tmp_path / "b", table)
    for sel_a, sel_b in zip(selections(run_a[2]), selections(run_b[2]), strict=True):
        np.testing.assert_array_equal(sel_a, sel_b)
    np.testing.assert_array_equal(scores(run_a[3]), scores(run_b[3]))
    (tmp_path / "c").mkdir()
    run_c = pipeline(capsys, tmp_path / "c", table, seed=1)
    assert not np.array_equal(scores(run_a[3]), scores(run_c[3]))  # the seed matters


def test_resume_after_stopping_gives_the_same_result(tmp_path, capsys, table):
    # error re-selection with tol 0 keeps changing a few rows on this table, so the run lasts all 12
    # epochs and the resumed half really trains (the GMM rule converges at epoch 3 here)
    changing = ["--reselect-by", "error", "--p", "30"]
    straight = pipeline(capsys, tmp_path, table, train_extra=changing)
    f, c = straight[0], straight[1]
    with h5py.File(straight[2]) as h:
        assert h.attrs["stop_reason"] == "epoch budget" and json.loads(h.attrs["state"])["epoch"] == 12
    m2, s2 = tmp_path / "m2.h5", tmp_path / "s2.h5"
    train_6 = [a if a != "12" else "6" for a in TRAIN]
    code, out, err = run_cli(capsys, "train", f, c, "-o", m2, *train_6, *changing, "--json")
    assert code == 0, err
    half = json.loads(out)
    assert half["epochs"] == 6 and half["stop_reason"] == "epoch budget" and half["reselections"] == 2
    assert half["score_parts"] == ["knn", "l2", "range", "tails"]  # what "auto" combines on a narrow table
    code, out, err = run_cli(capsys, "train", f, c, "-o", m2, *TRAIN, *changing, "--resume", "--json")
    assert code == 0, err
    resumed = json.loads(out)
    assert resumed["resumed"] and resumed["epochs"] == 12 and resumed["reselections"] == 4  # 6 more epochs trained
    assert run_cli(capsys, "score", m2, f, "-o", s2)[0] == 0
    for a, b in zip(selections(straight[2]), selections(m2), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(scores(straight[3]), scores(s2))


def test_train_checkpoints_after_every_reselection_but_the_last(tmp_path, capsys, table, monkeypatch):
    """A checkpoint after each re-selection that training goes on from; none after the last one,
    which the complete model follows at once (a checkpoint there would only cost time)."""
    from deepuad.artifacts import model as model_artifact

    written = []  # the ``complete`` flag of every model file train writes, in order
    real_write = model_artifact.write
    monkeypatch.setattr(model_artifact, "write", lambda *args, **kw: (written.append(args[9]), real_write(*args, **kw))[1])
    f, c, m = tmp_path / "f.h5", tmp_path / "c.h5", tmp_path / "m.h5"
    assert run_cli(capsys, "extract", table, "-o", f)[0] == 0
    assert run_cli(capsys, "cluster", f, "--clusters", "6", "-o", c)[0] == 0
    # the error rule with tol 0 keeps changing a few rows here: all 12 epochs, 4 re-selections
    code, out, err = run_cli(capsys, "train", f, c, "-o", m, *TRAIN, "--reselect-by", "error", "--json")
    assert code == 0, err
    assert json.loads(out)["reselections"] == 4
    assert written == [False, False, False, True]


@pytest.mark.slow
def test_killed_training_resumes_exactly(tmp_path, capsys):
    table = make_table(tmp_path / "big.csv", n_normal=3000, n_anomaly=300)
    f, c, m = tmp_path / "f.h5", tmp_path / "c.h5", tmp_path / "m.h5"
    run_cli(capsys, "extract", table, "--label-column", "label", "--anomaly-values", "bad", "-o", f)
    run_cli(capsys, "cluster", f, "--clusters", "6", "-o", c)
    # error re-selection with tol 0 keeps changing a few rows here, so the run lasts all 30 epochs and the
    # kill lands mid-run (the default GMM rule can converge before the first poll)
    args = ["train", f, c, "--tol", "0", "--epochs", "30", "--r", "2", "--batch-size", "16", "--layers", "6,3",
            "--reselect-by", "error", "--device", "cpu", "--threads", "1"]
    reference = tmp_path / "ref.h5"
    assert run_cli(capsys, *args, "-o", reference)[0] == 0
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "deepuad", "--quiet", *map(str, args), "-o", str(m)], env=env)
    checkpoint = checkpoint_path(m)  # beside the output, which only the finished model replaces
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:  # first checkpoint written
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not m.exists()
    with h5py.File(checkpoint) as h:
        assert not h.attrs["complete"]  # we really killed it mid-run
    assert run_cli(capsys, *args, "-o", m, "--resume")[0] == 0
    assert not checkpoint.exists()
    for a, b in zip(selections(reference), selections(m), strict=True):
        np.testing.assert_array_equal(a, b)
    assert run_cli(capsys, "score", reference, f, "-o", tmp_path / "s1.h5")[0] == 0
    assert run_cli(capsys, "score", m, f, "-o", tmp_path / "s2.h5")[0] == 0
    np.testing.assert_array_equal(scores(tmp_path / "s1.h5"), scores(tmp_path / "s2.h5"))


def test_run_chains_stages_and_skips_what_is_current(tmp_path, capsys, table):
    args = ["run", table, "-o", tmp_path / "out", "--label-column", "label", "--anomaly-values", "bad", "--clusters", "6",
            "--epochs", "6", "--r", "3", "--batch-size", "32", "--lr", "0.01", "--layers", "6,3", "--reselect-clusters", "5", "--device", "cpu", "--json"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    first = json.loads(out)
    assert first["score"]["rows"] == 440 and not any(stage.get("skipped") for stage in first.values())
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert all(stage.get("skipped") for stage in json.loads(out).values())
    # a train parameter that changes the weights: train is redone, and score too since its model changed (a
    # parameter that left the model's content as it was, e.g. a p whose selections came out the same, would
    # rightly leave the scores current)
    code, out, err = run_cli(capsys, *args, "--lr", "0.02")
    assert code == 0, err
    again = json.loads(out)
    assert again["extract"].get("skipped") and again["cluster"].get("skipped")
    assert not again["train"].get("skipped") and not again["score"].get("skipped")


# ------------------------------------------------------------------------- errors
def one_error_line(err):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("deepuad: error:") and "Traceback" not in err


@pytest.fixture
def built(tmp_path, capsys, table):
    return pipeline(capsys, tmp_path, table)


def test_bad_inputs_give_one_line_and_documented_codes(tmp_path, capsys, built, table):
    f, c, m, s, _ = built
    nan_csv = tmp_path / "nan.csv"
    nan_csv.write_text("a,b\n1,2\n3,\n")
    other = make_table(tmp_path / "other.csv", seed=5)
    run_cli(capsys, "extract", other, "--label-column", "label", "--anomaly-values", "bad", "-o", tmp_path / "other.h5")
    cases = [
        (("cluster", tmp_path / "missing.h5"), 3, "no such file"),
        (("cluster", tmp_path), 3, "is a directory"),
        (("cluster", c), 3, "expected features"),
        (("extract", nan_csv), 4, "missing, non-numeric"),
        (("extract", table, "--label-column", "nope"), 2, "not in"),
        (("cluster", f, "--p0", "120"), 2, "p0"),
        (("train", f, c, "--r", "0"), 2, "r must be"),
        (("train", f, c, "--lr", "-1"), 2, "lr must be"),
        (("train", f, c, "--device", "tpu"), 2, "--device"),
        (("train", tmp_path / "other.h5", c, "-o", tmp_path / "x.h5"), 5, "different features"),
        (("score", m, f, "-o", tmp_path / "no" / "s.h5"), 6, "does not exist"),
        (("score", m, f, "--contamination", "0.9"), 2, "contamination"),
        (("train", f, c, "--bogus"), 2, "No such option"),
    ]
    if not __import__("torch").cuda.is_available():
        cases.append((("train", f, c, "--device", "cuda", "-o", tmp_path / "x.h5"), 7, "CUDA"))
    for args, expected_code, words in cases:
        code, out, err = run_cli(capsys, *args)
        assert code == expected_code, (args, code, err)
        assert one_error_line(err), (args, err)
        assert words.lower() in err.lower(), (args, err)
    assert not (tmp_path / "x.h5").exists()


def test_score_refuses_differently_encoded_features(tmp_path, capsys, built):
    f, c, m, s, _ = built
    other = make_table(tmp_path / "o.csv", seed=3)
    run_cli(capsys, "extract", other, "--label-column", "label", "--anomaly-values", "bad", "--scale", "standard", "-o", tmp_path / "o.h5")
    before = s.stat().st_mtime_ns
    code, _, err = run_cli(capsys, "score", m, tmp_path / "o.h5", "-o", s)
    assert code == 5 and "encoded differently" in err and s.stat().st_mtime_ns == before
    assert run_cli(capsys, "score", m, tmp_path / "o.h5", "-o", tmp_path / "forced.h5", "--force")[0] == 0


@pytest.mark.parametrize("method", ["kmeans", "hdbscan", "distribution"])
def test_every_clustering_method_through_the_cli(tmp_path, capsys, table, method):
    f, c = tmp_path / "f.h5", tmp_path / "c.h5"
    run_cli(capsys, "extract", table, "--label-column", "label", "--anomaly-values", "bad", "-o", f)
    extra = {"kmeans": ["--clusters", "6"], "hdbscan": ["--min-cluster-size", "5"],  # each method's own options
             "distribution": ["--thres", "auto", "--min-clus", "5"]}[method]
    code, out, err = run_cli(capsys, "cluster", f, "--method", method, "--p0", "35", "-o", c, "--json", *extra)
    assert code == 0, err
    summary = json.loads(out)
    with h5py.File(c) as h:
        assignment, selected = h["assignment"][()], h["selected"][()]
    assert (assignment[selected] >= 0).all()  # unclustered rows are never selected
    assert summary["selected_anomaly_share"] < summary["data_anomaly_share"]  # the tight clusters are cleaner
    code, out, err = run_cli(capsys, "inspect", c, "--json")
    clusters = json.loads(out)["clusters"]
    assert [row["variance"] for row in clusters] == sorted(row["variance"] for row in clusters)


def test_version_alone(capsys):
    from deepuad import __version__

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"deepuad {__version__}"
