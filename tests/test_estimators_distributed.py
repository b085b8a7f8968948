"""Data-parallel training under torchrun (gloo, 2 CPU processes): it finishes, agrees with a
single-process run within the documented tolerance, is deterministic, and resumes after a rank
is killed, with the same or another number of processes."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from deepuad.estimators.detector import take_rows
from deepuad.estimators.distributed import World
from deepuad.estimators.metrics import ranking_metrics
from deepuad.stages.train import checkpoint_path

from helpers import make_table, run_cli

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def deepuad_cmd(*args, processes=1):
    if processes == 1:
        return [sys.executable, "-m", "deepuad", "--quiet", *map(str, args)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", "deepuad", "--quiet", *map(str, args)]


def run(*args, processes=1):
    done = subprocess.run(deepuad_cmd(*args, processes=processes), env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def scores_of(capsys, model, features, out):
    code, _, err = run_cli(capsys, "--quiet", "score", model, features, "-o", out)
    assert code == 0, err
    with h5py.File(out) as f:
        return f["score"][:], f["y"][:]


def selections_of(model):
    with h5py.File(model) as f:
        return [f[f"iterations/{k}/selected"][:] for k in sorted(f["iterations"], key=int)], int(f.attrs["processes"] if "processes" in f.attrs else 0)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    table = make_table(folder / "data.csv", n_normal=1600, n_anomaly=160)
    features, clusters = folder / "data.features.h5", folder / "data.clusters.h5"
    for args in (("extract", table, "--label-column", "label", "--anomaly-values", "ok", "-o", features),
                 ("cluster", features, "--clusters", "6", "-o", clusters)):
        subprocess.run(deepuad_cmd(*args), env=ENV, check=True, capture_output=True)
    return folder, features, clusters


TRAIN = ("--epochs", "40", "--reselect-every", "5", "--tol", "0", "--batch-size", "64", "--layers", "8,4,2")


@pytest.mark.slow
def test_two_processes_match_one_within_tolerance(prepared, capsys):
    folder, features, clusters = prepared
    one, two, again = folder / "one.model.h5", folder / "two.model.h5", folder / "again.model.h5"
    run("train", features, clusters, "-o", one, *TRAIN)
    run("train", features, clusters, "-o", two, *TRAIN, processes=2)
    run("train", features, clusters, "-o", again, *TRAIN, processes=2)
    with h5py.File(two) as f:
        assert f.attrs["complete"] and '"processes": 2' in f.attrs["params"]
    s1, y = scores_of(capsys, one, features, folder / "one.scores.h5")
    s2, _ = scores_of(capsys, two, features, folder / "two.scores.h5")
    s2_again, _ = scores_of(capsys, again, features, folder / "again.scores.h5")
    np.testing.assert_array_equal(s2, s2_again)  # gloo all-reduce in a fixed order: 2-process runs repeat exactly
    # the documented tolerance (docs/scaling.md): the same selections up to 1 % of rows,
    # scores within 1 % of their range of each other and in the same order (Spearman >= 0.99)
    sel1, _ = selections_of(one)
    sel2, _ = selections_of(two)
    assert len(sel1) == len(sel2) >= 2
    for a, b in zip(sel1, sel2):
        assert len(np.setxor1d(a, b)) <= 0.01 * len(s1)
    assert np.abs(s1 - s2).max() < 0.01 * np.ptp(s1)
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert np.corrcoef(rank(s1), rank(s2))[0, 1] >= 0.99
    assert abs(ranking_metrics(y, s1)["auroc"] - ranking_metrics(y, s2)["auroc"]) < 0.01


def _rank_pid(launcher: subprocess.Popen, rank: str) -> int | None:
    """The worker process torchrun started for ``rank`` (found through /proc)."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    return None


@pytest.mark.slow
def test_killed_rank_resumes_exactly_and_with_another_process_count(prepared, capsys):
    folder, features, clusters = prepared
    # the error re-selection with tol 0 keeps changing a few rows on this data, so the run lasts all 100
    # epochs and there is time to kill it between checkpoints (the default GMM rule converges by epoch 10)
    train = ("--epochs", "100", "--reselect-every", "5", "--tol", "0", "--batch-size", "64", "--layers", "8,4,2",
             "--reselect-by", "error")
    whole = folder / "whole.model.h5"
    run("train", features, clusters, "-o", whole, *train, processes=2)

    killed = folder / "killed.model.h5"
    checkpoint = checkpoint_path(killed)  # a run checkpoints beside its output
    launcher = subprocess.Popen(deepuad_cmd("train", features, clusters, "-o", killed, *train, processes=2), env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.02)
    victim = _rank_pid(launcher, "1")
    assert victim is not None and checkpoint.exists(), "the run ended or never checkpointed before the kill"
    os.kill(victim, signal.SIGKILL)
    assert launcher.wait(timeout=120) != 0
    assert not killed.exists()  # only a finished run writes the output
    with h5py.File(checkpoint) as f:
        assert not f.attrs["complete"]
        checkpoint_epoch = int(f["iterations"][str(len(f["iterations"]) - 1)].attrs["epoch"])
    assert 0 < checkpoint_epoch < 100
    shutil.copy(checkpoint, checkpoint_path(folder / "killed_copy.model.h5"))

    run("train", features, clusters, "-o", killed, *train, "--resume", processes=2)
    whole_scores, y = scores_of(capsys, whole, features, folder / "whole.scores.h5")
    resumed_scores, _ = scores_of(capsys, killed, features, folder / "killed.scores.h5")
    np.testing.assert_array_equal(resumed_scores, whole_scores)
    for a, b in zip(selections_of(whole)[0], selections_of(killed)[0]):
        np.testing.assert_array_equal(a, b)

    # the same checkpoint continued by one process: the state carries over, the shuffling differs
    single = folder / "killed_copy.model.h5"
    run("train", features, clusters, "-o", single, *train, "--resume")
    with h5py.File(single) as f:
        assert f.attrs["complete"] and '"processes": 1' in f.attrs["params"]
        assert int(f["iterations"][str(len(f["iterations"]) - 1)].attrs["epoch"]) > checkpoint_epoch
    kept = selections_of(single)[0]
    for a, b in zip(kept[: checkpoint_epoch // 5 + 1], selections_of(whole)[0]):
        np.testing.assert_array_equal(a, b)  # the selections before the kill are the checkpoint's
    single_scores, _ = scores_of(capsys, single, features, folder / "single.scores.h5")
    assert abs(ranking_metrics(y, single_scores)["auroc"] - ranking_metrics(y, whole_scores)["auroc"]) < 0.02


def test_blocks_partition_rows_and_take_rows_reads_hdf5_like_numpy(tmp_path):
    for n in (0, 1, 7, 100):
        for size in (1, 2, 3, 8):
            world = World(size=size)
            blocks = [world.block(n, r) for r in range(size)]
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            assert max(b - a for a, b in blocks) - min(b - a for a, b in blocks) <= 1
    X = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["X"] = X
    indices = np.sort(np.random.default_rng(1).choice(1000, size=137, replace=False))
    with h5py.File(tmp_path / "x.h5") as f:
        for block_rows in (1, 7, 64, 5000):
            np.testing.assert_array_equal(take_rows(f["X"], indices, block_rows), X[indices])
        assert take_rows(f["X"], indices[:0]).shape == (0, 3)


def test_only_train_runs_under_torchrun(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for command in ("extract", "cluster", "score", "run", "inspect"):
        code, _, err = run_cli(capsys, command, tmp_path / "x.h5", tmp_path / "y.h5")
        assert code == 2 and "only 'train' runs under torchrun" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
