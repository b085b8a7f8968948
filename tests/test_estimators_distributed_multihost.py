"""The README's multi-host line, run: two torchrun "nodes" on this machine (--nnodes 2
--nproc-per-node 1, c10d rendezvous on 127.0.0.1) train together; one node is killed mid-run,
and the same command with --resume on both nodes finishes from the checkpoint."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import cli, make_table
from deepuad.stages.train import checkpoint_path

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# the error re-selection with tol 0 keeps changing a few rows, so the run lasts its whole budget
# and there is time to kill a node between checkpoints
TRAIN = ("--epochs", "30", "--reselect-every", "5", "--tol", "0", "--batch-size", "64", "--layers", "8,4,2",
         "--reselect-by", "error")


def last_checkpoint_epoch(model) -> int:
    """The epoch of the model file's (or checkpoint's) last re-selection; -1 while there is none (or it is being replaced)."""
    try:
        with h5py.File(model, "r") as f:
            return max(int(f[f"iterations/{k}"].attrs["epoch"]) for k in f["iterations"])
    except (OSError, KeyError, ValueError):
        return -1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node(port: int, run_id: str, *args) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", run_id,
               "-m", "deepuad", "--quiet", *map(str, args)]
    return subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in their own sessions)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def kill_node(launcher: subprocess.Popen) -> None:
    """What losing a host does: its agent and its worker die at once."""
    for pid in [*descendants(launcher.pid), launcher.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def finish(launchers, timeout=240) -> list[int]:
    codes = []
    for launcher in launchers:
        try:
            launcher.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_node(launcher)
            launcher.wait()
        codes.append(launcher.returncode)
    return codes


def test_two_nodes_train_and_resume_after_one_is_killed(tmp_path):
    table = make_table(tmp_path / "data.csv", n_normal=1600, n_anomaly=160)
    features, clusters, model = tmp_path / "data.features.h5", tmp_path / "data.clusters.h5", tmp_path / "data.model.h5"
    for args in (("extract", table, "--label-column", "label", "--anomaly-values", "ok", "-o", features),
                 ("cluster", features, "--clusters", "6", "-o", clusters)):
        code, _, err = cli("--quiet", *args)
        assert code == 0, err
    train = ("train", features, clusters, "-o", model, *TRAIN)
    checkpoint = checkpoint_path(model)  # a run checkpoints beside its output
    port = free_port()
    first = node(port, "first", *train)
    time.sleep(0.5)  # the first node hosts the rendezvous store; the second one is the one killed
    second = node(port, "first", *train)
    deadline = time.time() + 120
    while last_checkpoint_epoch(checkpoint) < 5 and time.time() < deadline and first.poll() is None and second.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None and second.poll() is None, "the run ended before the kill: " + (
        second.stderr.read()[-2000:] if second.poll() is not None else first.stderr.read()[-2000:])
    assert last_checkpoint_epoch(checkpoint) >= 5, "no checkpoint after training began within 120 s"
    kill_node(second)
    killed_at = time.time()
    codes = finish([first, second], timeout=120)
    print(f"surviving node exited {time.time() - killed_at:.1f} s after the kill")
    assert codes[0] != 0 and codes[1] != 0  # the surviving node fails too, instead of hanging
    assert not model.exists()  # only a finished run writes the output
    with h5py.File(checkpoint) as f:
        assert not f.attrs["complete"] and '"processes": 2' in f.attrs["params"]
        kept = {k: f[f"iterations/{k}/selected"][()] for k in f["iterations"]}
        checkpoint_epoch = max(int(f[f"iterations/{k}"].attrs["epoch"]) for k in f["iterations"])
    assert 5 <= checkpoint_epoch < 30

    port = free_port()
    resumed = [node(port, "again", *train, "--resume")]
    time.sleep(0.5)
    resumed.append(node(port, "again", *train, "--resume"))
    codes = finish(resumed)
    assert codes == [0, 0], [launcher.stderr.read()[-2000:] for launcher in resumed]
    assert not checkpoint.exists()
    with h5py.File(model) as f:
        assert f.attrs["complete"] and '"processes": 2' in f.attrs["params"]
        epochs = [int(f[f"iterations/{k}"].attrs["epoch"]) for k in f["iterations"]]
        assert max(epochs) > checkpoint_epoch and len(f["epoch_losses"]) == 30
        for k, selected in kept.items():  # the selections made before the kill are carried over
            np.testing.assert_array_equal(f[f"iterations/{k}/selected"][()], selected)
