"""Hostile files and careless paths (issue 14): files crafted by someone else, and command lines
a careless user types. One section per class of the issue:

1. an output that is also an input, or not a regular file      5. the right exit code, the right file blamed
2. results that are not numbers                                6. signals (Ctrl-C, SIGTERM)
3. artifacts that make deepuad read other files                7. memory bombs from small files
4. bad input that crashed (exit 1, a segfault)                 8. silent surprises in extract

Every refusal must be one line naming the file and the problem, with a documented exit code, no
traceback, and no file created or changed (``snapshot``). Tiny data throughout, as in
test_artifacts_reliability.py; subprocesses only where a real process boundary is needed (signals, pipes,
peak memory).
"""

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import (CHILD_ENV, TAKE_CTRL_C, TRAIN, clean_error, replace_dataset, rewrite, run_cli, run_in_child, snapshot,
                     temp_litter)
from deepuad import artifacts as art


def refuses(capsys, args, code, words, named, *folders):
    """Run the command; assert exit ``code``, one clean line containing ``words`` and naming
    ``named``, and no file created or changed under ``folders``."""
    before = snapshot(*folders)
    result, _, err = run_cli(capsys, *args)
    assert result == code, (args, result, err)
    assert clean_error(err), err
    assert words.lower() in err.lower(), err
    if named is not None:
        assert str(named) in err, err
    assert snapshot(*folders) == before, "a file was created or changed"
    return err


def copy(built, kind, path: Path) -> Path:
    shutil.copy(built[kind], path)
    return path


# =========================================================================== 1. outputs
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, capsys, built):
    f, c, m = (copy(built, kind, tmp_path / f"{kind}.h5") for kind in ("features", "clusters", "model"))
    s0, s1 = (copy(built, f"shard{i}", tmp_path / f"shard{i}.h5") for i in (0, 1))
    table = shutil.copy(built["table"], tmp_path / "same.csv")
    cases = [
        (["extract", table, "-o", table], table),
        (["extract", table, "--like", f, "-o", f], f),
        (["cluster", f, "-o", f], f),
        (["train", f, c, "-o", f, *TRAIN], f),
        (["train", f, c, "-o", c, *TRAIN], c),
        (["score", m, f, "-o", m], m),
        (["score", m, f, "-o", f], f),
        (["merge-scores", s0, s1, "-o", s1], s1),
        (["baseline", f, "-o", f], f),
        (["baseline", f, "--score-features", f, "--method", "iforest", "-o", f], f),
    ]
    for args, victim in cases:
        refuses(capsys, args, 6, "is also an input of this command", victim, tmp_path)


def test_an_output_that_is_an_input_under_another_name_is_refused(tmp_path, capsys, built):
    features = copy(built, "features", tmp_path / "features.h5")
    (tmp_path / "symlink.h5").symlink_to(features)
    os.link(features, tmp_path / "hardlink.h5")
    for alias in ("symlink.h5", "hardlink.h5", "./features.h5", "../" + tmp_path.name + "/features.h5"):
        refuses(capsys, ["cluster", features, "-o", tmp_path / alias], 6, "is also an input", None, tmp_path)


def test_run_and_extract_refuse_to_write_into_what_they_read(tmp_path, capsys, built):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(built["table"], folder / "features.h5")  # a CSV under the name run gives its first artifact
    refuses(capsys, ["run", folder / "features.h5", "-o", folder, "--label-column", "label", "--anomaly-values", "bad"],
            6, "an input of this command", folder / "features.h5", tmp_path)
    videos = tmp_path / "videos"
    videos.mkdir()
    np.save(videos / "v1.npy", np.random.default_rng(0).normal(size=(8, 4)))
    refuses(capsys, ["run", videos, "-o", videos], 6, "an input of this command", videos, tmp_path)
    refuses(capsys, ["run", videos, "-o", videos / "out"], 6, "an input of this command", None, tmp_path)
    refuses(capsys, ["extract", videos, "-o", videos / "v.features.h5"], 6, "an input of this command", None, tmp_path)
    refuses(capsys, ["extract", videos, "--per-video", "-o", videos], 6, "is also an input", None, tmp_path)


def test_evaluate_plots_refuse_a_folder_where_they_would_replace_an_input(tmp_path, capsys, built):
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    plots.mkdir()
    scores = copy(built, "scores", plots / "metrics.json")  # an input with the name evaluate writes
    refuses(capsys, ["evaluate", scores, "--plots", plots], 6, "holds", plots, tmp_path)


@pytest.mark.parametrize("kind", ["fifo", "link-to-device", "socket"])
def test_an_output_that_is_not_a_regular_file_is_refused(tmp_path, capsys, built, kind):
    """A FIFO, a device (here reached through a symbolic link, so a failing test cannot replace
    the real /dev/null) or a socket: writing means renaming a new file over it, which would
    replace it (as root, `-o /dev/null` replaced the system's /dev/null)."""
    target = tmp_path / "target"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "link-to-device":
        target.symlink_to(os.devnull)
    else:
        import socket

        server = socket.socket(socket.AF_UNIX)
        server.bind(str(target))
    try:
        for args in (["extract", built["table"], "-o", target], ["cluster", built["features"], "-o", target],
                     ["score", built["model"], built["features"], "-o", target],
                     ["merge-scores", built["shard0"], built["shard1"], "-o", target]):
            refuses(capsys, args, 6, "not a regular file", target, tmp_path, built["features"].parent)
        assert not target.is_file() and (kind != "link-to-device" or target.is_symlink())
    finally:
        if kind == "socket":
            server.close()


def test_long_output_names_work_and_too_long_ones_are_refused(tmp_path, capsys, built):
    long_ok = tmp_path / ("x" * 240 + ".h5")  # the temporary name is shortened: still writable
    assert run_cli(capsys, "cluster", built["features"], "--clusters", "3", "-o", long_ok)[0] == 0
    assert long_ok.is_file() and temp_litter(tmp_path) == []
    refuses(capsys, ["cluster", built["features"], "-o", tmp_path / ("y" * 300 + ".h5")], 6, "name too long", None, tmp_path)


# =========================================================================== 2. not numbers
def _float64_features(built, path: Path, value: float) -> Path:
    def edit(f):
        X = f["X"][()].astype(np.float64)
        X[2, 1] = value
        del f["X"]
        f.create_dataset("X", data=X)
    return rewrite(copy(built, "features", path), edit)


@pytest.mark.parametrize("value", [1e300, -1e300, 3.5e38])
def test_features_beyond_float32_range_are_refused_by_every_reader(tmp_path, capsys, built, value):
    bad = _float64_features(built, tmp_path / "big.h5", value)
    out = tmp_path / "out.h5"
    for args in (["score", built["model"], bad, "-o", out], ["cluster", bad, "--clusters", "3", "-o", out],
                 ["train", bad, built["clusters"], "-o", out, "--force", *TRAIN], ["baseline", bad, "-o", out]):
        refuses(capsys, args, 4, "beyond float32's range", bad, tmp_path)


def _model_with(built, path: Path, huge=False, nan=False) -> Path:
    def edit(f):
        if nan:
            weight = f["weights/encoder.0.weight"][()]
            weight[0, 0] = np.nan
            f["weights/encoder.0.weight"][...] = weight
        if huge:  # finite, but the reconstruction overflows float32 to inf
            last = sorted(name for name in f["weights"] if name.startswith("decoder"))[-1]
            f[f"weights/{last}"][...] = np.float32(3e38)
    return rewrite(copy(built, "model", path), edit)


def test_a_model_with_a_nan_weight_is_refused(tmp_path, capsys, built):
    bad = _model_with(built, tmp_path / "nan-model.h5", nan=True)
    refuses(capsys, ["score", bad, built["features"], "-o", tmp_path / "out.h5"], 4, "NaN or infinite weights", bad, tmp_path)
    refuses(capsys, ["score", bad, built["features"], "--shard", "0/2", "-o", tmp_path / "out.h5"], 4, "NaN or infinite", bad,
            tmp_path)


def test_finite_weights_that_overflow_give_an_error_not_nan_scores(tmp_path, capsys, built):
    bad = _model_with(built, tmp_path / "huge-model.h5", huge=True)
    # other batches than train's: the network scores the rows (in train's, score takes the scores train stored)
    refuses(capsys, ["score", bad, built["features"], "--batch-rows", "32", "-o", tmp_path / "out.h5"], 4,
            "NaN or infinite scores", built["features"], tmp_path)


@pytest.mark.parametrize("case,words", [("nan", "NaN or infinite scores"), ("inf", "NaN or infinite scores"),
                                        ("short", "'training_scores' has"), ("text", "expected kind")])
def test_a_model_whose_stored_training_scores_are_broken_is_refused(tmp_path, capsys, built, case, words):
    """score takes a model's training scores for its training features: they must be numbers, one per row."""
    def edit(f):
        scores = f["training_scores"][()]
        if case in ("nan", "inf"):
            scores[3] = np.nan if case == "nan" else np.inf
            f["training_scores"][...] = scores
        elif case == "short":
            replace_dataset(f, "training_scores", scores[:-1])
        else:
            replace_dataset(f, "training_scores", np.array([b"x"] * len(scores)))
    bad = rewrite(copy(built, "model", tmp_path / "model.h5"), edit)
    refuses(capsys, ["score", bad, built["features"], "-o", tmp_path / "out.h5"], 3, words, bad, tmp_path)


def _scores_with(built, path: Path, kind="scores", value=np.nan, threshold=None) -> Path:
    def edit(f):
        scores = f["score"][()]
        scores[1] = value
        f["score"][...] = scores
        if threshold is not None:
            f.attrs["threshold"] = threshold
    return rewrite(copy(built, kind, path), edit)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_scores_give_no_metrics(tmp_path, capsys, built, value):
    bad = _scores_with(built, tmp_path / "bad-scores.h5", value=value)
    refuses(capsys, ["evaluate", bad], 4, "NaN or infinite score", bad, tmp_path)
    refuses(capsys, ["evaluate", bad, "--json"], 4, "NaN or infinite score", bad, tmp_path)
    refuses(capsys, ["inspect", bad], 4, "NaN or infinite score", bad, tmp_path)
    shard = _scores_with(built, tmp_path / "bad-shard.h5", kind="shard1", value=value)
    refuses(capsys, ["merge-scores", built["shard0"], shard, "-o", tmp_path / "merged.h5"], 4, "NaN or infinite score", shard,
            tmp_path)


def test_a_non_finite_threshold_gives_no_metrics(tmp_path, capsys, built):
    for threshold in (np.nan, np.inf):
        for kind in ("scores", "clusters"):
            bad = rewrite(copy(built, kind, tmp_path / f"{kind}-thr.h5"), lambda f: f.attrs.__setitem__("threshold", threshold))
            refuses(capsys, ["inspect", bad], 4, "threshold", bad, tmp_path)
            if kind == "scores":
                refuses(capsys, ["evaluate", bad], 4, "threshold", bad, tmp_path)


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict_json(tmp_path, capsys, built):
    """`inspect MODEL --json` held NaN (the loss of iteration 0 is 'not yet'); JSON has null."""
    for kind in ("features", "clusters", "model", "scores", "shard0"):
        code, out, err = run_cli(capsys, "inspect", built[kind], "--json")
        assert code == 0, err
        _strict(out)
    info = _strict(run_cli(capsys, "inspect", built["model"], "--json")[1])
    assert info["iterations"][0]["loss"] is None  # NaN in the file, null on stdout
    code, out, _ = run_cli(capsys, "evaluate", built["scores"], "--json")
    assert code == 0 and _strict(out)["auroc"] is not None
    one_class = rewrite(copy(built, "scores", tmp_path / "one-class.h5"), lambda f: f["y"].__setitem__(Ellipsis, 0))
    code, out, _ = run_cli(capsys, "evaluate", one_class, "--json")
    assert code == 0 and _strict(out)["auroc"] is None  # undefined with one class: null, not NaN


def test_diverging_training_is_named_as_such_and_writes_no_model(tmp_path, capsys, built):
    for lr in ("1e30", "1e20"):
        err = refuses(capsys, ["train", built["features"], built["clusters"], "-o", tmp_path / "m.h5", *TRAIN, "--lr", lr], 4,
                      "training diverged", None, tmp_path)
        assert "--lr" in err and str(built["features"]) not in err and "contains NaN" not in err


# =========================================================================== 3. other files
def _features_with(built, path: Path, edit) -> Path:
    shutil.copy(built["features"], path)
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _external_X(target: Path, nbytes: int):
    def edit(f):
        shape = f["X"].shape
        del f["X"]
        f.create_dataset("X", shape=shape, dtype="f4", external=[(str(target), 0, nbytes)])
    return edit


def _virtual_X(source: Path):
    def edit(f):
        shape = f["X"].shape
        del f["X"]
        layout = h5py.VirtualLayout(shape=shape, dtype="f4")
        layout[:] = h5py.VirtualSource(str(source), "X", shape=shape)
        f.create_virtual_dataset("X", layout, fillvalue=0)
    return edit


def _readers(built, bad, out):
    return [["score", built["model"], bad, "-o", out], ["cluster", bad, "--clusters", "3", "-o", out], ["inspect", bad],
            ["evaluate", built["scores"], "--labels", bad], ["extract", built["table"], "--like", bad, "-o", out]]


def test_external_storage_virtual_datasets_and_links_are_refused(tmp_path, capsys, built):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(66 * 7, dtype=np.float32).tobytes())  # a readable file of the right size
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # external storage on a FIFO hung forever
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as f:
        f["X"] = np.ones((66, 7), np.float32)
    cases = {
        "external storage": _external_X(secret, 66 * 7 * 4),
        "external storage on a FIFO": _external_X(fifo, 66 * 7 * 4),
        "virtual dataset": _virtual_X(source),
        "virtual dataset, source missing": _virtual_X(tmp_path / "missing.h5"),
        "external link": lambda f: f.__setitem__("extra", h5py.ExternalLink(str(source), "/X")),
        "external link replacing X": lambda f: (f.__delitem__("X"), f.__setitem__("X", h5py.ExternalLink(str(source), "/X"))),
        "soft link": lambda f: f.__setitem__("alias", h5py.SoftLink("/X")),
    }
    words = {"external storage": "external file", "virtual": "virtual dataset", "external link": "external link",
             "soft link": "SoftLink"}
    for name, edit in cases.items():
        bad = _features_with(built, tmp_path / f"{name.replace(' ', '_').replace(',', '')}.h5", edit)
        for args in _readers(built, bad, tmp_path / "out.h5"):
            started = time.monotonic()
            refuses(capsys, args, 3, next(w for k, w in words.items() if name.startswith(k)), bad, tmp_path)
            assert time.monotonic() - started < 30, (name, args)


def test_filters_deepuad_does_not_write_are_refused(tmp_path, capsys, built):
    """A filter HDF5 would look for as a plugin (code that is not deepuad's): refused from the
    dataset's creation properties, never applied."""
    def edit(f):
        data = f["y"][()]
        del f["y"]
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk((len(data),))
        plist.set_filter(32123, h5py.h5z.FLAG_OPTIONAL, ())
        space = h5py.h5s.create_simple(data.shape)
        h5py.h5d.create(f.id, b"y", h5py.h5t.NATIVE_INT8, space, dcpl=plist)
    bad = _features_with(built, tmp_path / "filter.h5", edit)
    refuses(capsys, ["inspect", bad], 3, "HDF5 filter 32123", bad, tmp_path)


# =========================================================================== 4. crashes on bad input
def _attr_edit(name, value):
    return lambda f: f.attrs.__setitem__(name, value)


def _nested(depth):
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("case,edit,words", [
    ("deep-json-params", _attr_edit("params", '{"a": ' + _nested(100_000) + "}"), "nested"),
    ("deep-json-inputs", _attr_edit("inputs", '{"a": ' + _nested(50) + "}"), "nested"),
    ("non-utf8-params", _attr_edit("params", np.bytes_(b'{"a": "\xff\xfe"}')), "UTF-8"),
    ("non-utf8-created", _attr_edit("created", np.bytes_(b"\xff\xfe2024")), "UTF-8"),
    ("non-utf8-kind", _attr_edit("deepuad_kind", np.bytes_(b"\xff")), ""),
])
def test_garbage_attributes_are_input_errors(tmp_path, capsys, built, case, edit, words):
    for kind in ("features", "model"):
        bad = copy(built, kind, tmp_path / f"{kind}-{case}.h5")
        with h5py.File(bad, "a") as f:
            edit(f)
        refuses(capsys, ["inspect", bad], 3, words, bad, tmp_path)
        if kind == "model":
            refuses(capsys, ["score", bad, built["features"], "-o", tmp_path / "o.h5"], 3, words, bad, tmp_path)


def _npy_header(shape, dtype="<f8", payload=b"\0" * 48) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


@pytest.mark.parametrize("name,content,code,words", [
    ("nul.csv", b"a,b\n1,2\n3\x004,5\n", 3, "NUL byte"),
    ("nul-header.csv", b"a,b\x00c\n1,2\n", 3, "NUL byte"),
    ("rows.npy", _npy_header((2**31, 3)), 3, "declares shape"),
    ("cols.npy", _npy_header((4, 2**40)), 3, "declares shape"),
    ("garbage-header.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 12}   \n", 3, "header"),
    ("truncated.npz", None, 3, "NumPy file"),
    ("rows-in.npz", None, 3, "declares shape"),
])
def test_crafted_raw_inputs_are_refused(tmp_path, capsys, name, content, code, words):
    path = tmp_path / name
    if name == "truncated.npz":
        buffer = io.BytesIO()
        np.savez(buffer, X=np.ones((50, 3)))
        content = buffer.getvalue()[:200]
    if name == "rows-in.npz":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("X.npy", _npy_header((2**31, 3)))
    else:
        path.write_bytes(content)
    refuses(capsys, ["extract", path, "-o", tmp_path / "out.h5"], code, words, path, tmp_path)


def test_a_closed_stdout_is_exit_6_not_a_crash(tmp_path, built):
    """`deepuad inspect FILE | head -1`: the reader is gone before deepuad writes."""
    for args in (["inspect", built["model"]], ["inspect", built["model"], "--json"], ["evaluate", built["scores"]]):
        read, write = os.pipe()
        os.close(read)  # the reader has already gone
        child = subprocess.run([sys.executable, "-m", "deepuad", *map(str, args)], stdout=write, stderr=subprocess.PIPE,
                               text=True, env=CHILD_ENV, timeout=120)
        os.close(write)
        assert child.returncode == 6, (args, child.returncode, child.stderr)
        assert clean_error(child.stderr) and "broken pipe" in child.stderr, child.stderr


def test_names_the_os_refuses_are_input_errors(tmp_path, capsys, built):
    long_name = tmp_path / ("z" * 300 + ".csv")
    for args in (["extract", long_name, "-o", tmp_path / "o.h5"], ["inspect", long_name], ["cluster", long_name, "-o", tmp_path / "o.h5"],
                 ["run", long_name, "-o", tmp_path / "run"]):
        refuses(capsys, args, 3, "name too long", None, tmp_path)


@pytest.mark.parametrize("threads", ["100000", "65", "-1"])
def test_thread_counts_are_bounded(tmp_path, capsys, built, threads):
    if int(threads) <= max(64, 4 * (os.cpu_count() or 1)) and int(threads) > 0:
        pytest.skip("within the limit on this machine")
    for args in (["score", built["model"], built["features"], "-o", tmp_path / "o.h5"],
                 ["train", built["features"], built["clusters"], "-o", tmp_path / "o.h5", *TRAIN[:-2]],
                 ["baseline", built["features"], "-o", tmp_path / "o.h5"]):
        refuses(capsys, [*args, "--threads", threads], 2, "--threads must be between 1 and", None, tmp_path)


# --- train --resume from a damaged checkpoint: the checkpoint is blamed, exit 3
def _checkpoint(built, path: Path, edit) -> Path:
    def full(f):
        f.attrs["complete"] = False  # a checkpoint of the same run
        edit(f)
    return rewrite(copy(built, "model", path), full)


def _replace(name, make):
    def edit(f):
        data = make(f[name][()])
        del f[name]
        f.create_dataset(name, data=data)
    return edit


RESUME_CASES = {
    "selection out of range": _replace("iterations/0/selected", lambda s: s + 10_000),
    "selection negative": _replace("iterations/0/selected", lambda s: s - 1_000),
    "later selection out of range": _replace("iterations/1/selected", lambda s: s + 10_000),
    "selection empty": _replace("iterations/1/selected", lambda s: s[:0]),
    "rng state of the wrong size": _replace("rng_state", lambda s: s[:10]),
    "optimiser moment of the wrong shape": _replace("optimizer/0/exp_avg", lambda s: np.zeros((3, 3), s.dtype)),
    "optimiser moment NaN": _replace("optimizer/0/exp_avg", lambda s: np.full_like(s, np.nan)),
    "weights NaN": _replace("weights/encoder.0.weight", lambda s: np.full_like(s, np.nan)),
    "optimiser settings not JSON": lambda f: f.attrs.__setitem__(
        "state", json.dumps({**json.loads(f.attrs["state"]), "optimizer_param_groups": "[{"})),
    "optimiser lr NaN": lambda f: f.attrs.__setitem__("state", json.dumps({
        **json.loads(f.attrs["state"]),
        "optimizer_param_groups": json.loads(f.attrs["state"])["optimizer_param_groups"].replace('"lr": 0.001', '"lr": NaN')})),
    "epoch negative": lambda f: f.attrs.__setitem__("state", json.dumps({**json.loads(f.attrs["state"]), "epoch": -3})),
}


@pytest.mark.parametrize("case", RESUME_CASES)
def test_resume_from_a_damaged_checkpoint_blames_the_checkpoint(tmp_path, capsys, built, case):
    with h5py.File(built["model"], "r") as f:
        if "iterations/1/selected" not in f and "iterations/1" in case:
            pytest.skip("the fixture's model has one iteration")
    checkpoint = _checkpoint(built, tmp_path / "m.h5", RESUME_CASES[case])
    err = refuses(capsys, ["train", built["features"], built["clusters"], "-o", checkpoint, *TRAIN, "--resume"], 3, "",
                  checkpoint, tmp_path)
    assert str(built["features"]) not in err


# =========================================================================== 5. exit codes
def _compressed(tmp_path, name, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_corrupt_compressed_tables_are_input_errors_not_interruptions(tmp_path, capsys):
    import bz2
    import lzma

    table = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * 3 % 7) for i in range(2000))
    cases = [
        _compressed(tmp_path, "truncated.csv.gz", gzip.compress(table)[:60]),
        _compressed(tmp_path, "garbage.csv.gz", b"\x1f\x8b\x08\x00" + bytes(range(200))),
        _compressed(tmp_path, "crc.csv.gz", gzip.compress(table)[:-8] + b"\0" * 8),
        _compressed(tmp_path, "truncated.csv.bz2", bz2.compress(table)[:50]),
        _compressed(tmp_path, "truncated.csv.xz", lzma.compress(table)[:50]),
        _compressed(tmp_path, "gzip-named-csv.csv", gzip.compress(table)[:60]),  # detected by content, not name
    ]
    for path in cases:
        refuses(capsys, ["extract", path, "-o", tmp_path / "out.h5"], 3, "corrupt or truncated compressed file", path, tmp_path)
    whole = _compressed(tmp_path, "whole.csv.gz", gzip.compress(table))
    assert run_cli(capsys, "extract", whole, "-o", tmp_path / "whole.h5")[0] == 0


@pytest.mark.parametrize("seed", [str(2**32), str(2**64), "-1"])
def test_seeds_numpy_cannot_take_are_usage_errors(tmp_path, capsys, built, seed):
    out = tmp_path / "o.h5"
    for args in (["cluster", built["features"], "-o", out], ["train", built["features"], built["clusters"], "-o", out, *TRAIN],
                 ["baseline", built["features"], "-o", out], ["extract", built["table"], "-o", out],
                 ["run", built["table"], "-o", tmp_path / "run"]):
        err = refuses(capsys, [*args, "--seed", seed], 2, "--seed", None, tmp_path)
        assert str(built["features"]) not in err


# =========================================================================== 6. signals
# the child scripts take Ctrl-C back themselves (helpers.TAKE_CTRL_C)
SLOW_SCORE = TAKE_CTRL_C + """
import sys, time
from deepuad.artifacts import scores
real = scores.require_finite_scores
def slow(*args):  # inside write_artifact, with the temporary file open: wait to be signalled
    print("inside", flush=True)
    time.sleep(60)
    return real(*args)
scores.require_finite_scores = slow
from deepuad.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_write_is_exit_130_with_no_temp_file_and_the_old_output(tmp_path, built, signum):
    out = copy(built, "scores", tmp_path / "out.h5")
    before = out.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", SLOW_SCORE, "score", str(built["model"]), str(built["features"]), "-o", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CHILD_ENV, cwd=tmp_path)
    try:
        assert child.stdout.readline().strip() == "inside"
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the temporary file exists now
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert clean_error(err) and ("terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted") in err, err
    assert temp_litter(tmp_path) == [] and out.read_bytes() == before


def test_a_held_back_interrupt_is_raised_before_the_rename(tmp_path, monkeypatch):
    """Ctrl-C inside HDF5's file driver is held back and re-delivered 10 ms later; if the file
    closes first, it must be raised there (before the rename), not land after the command has
    replaced its output, or during interpreter shutdown (a traceback and exit 0)."""
    # Python's own Ctrl-C handler, whatever the shell that started the suite left (a shell without
    # job control starts background commands with SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    handle = art._SafeFile(tmp_path / "driver.tmp")
    real_write = handle.raw.write

    def write_with_ctrl_c(data):
        os.kill(os.getpid(), signal.SIGINT)  # arrives while _SafeFile.write is on the stack
        return real_write(data)

    monkeypatch.setattr(handle, "raw", type("Raw", (), {"write": staticmethod(write_with_ctrl_c)})())
    raised_at_close, raised_late = False, False
    try:
        with art._interrupts_held_in_driver():
            handle.write(b"abc")
    except KeyboardInterrupt:
        raised_at_close = True
    try:
        time.sleep(0.1)  # a re-delivery still pending would land here
    except KeyboardInterrupt:
        raised_late = True
    finally:
        signal.signal(signal.SIGINT, previous)
    assert raised_at_close and not raised_late


READY_SCORE = TAKE_CTRL_C + """
import sys
from deepuad.cli import entry  # imported first: a signal during Python's own start-up is not deepuad's to handle
print("ready", flush=True)
entry(sys.argv[1:])
"""


def test_signals_at_random_moments_leave_a_complete_artifact_or_none(tmp_path, built):
    """SIGTERM and Ctrl-C at random moments of scoring: every run ends 0 or 130, never with a
    traceback, a temporary file or a damaged output, also when the signal lands in the interpreter's
    own exit after the command has finished (cli.entry ignores signals from then on)."""
    import random

    rng = random.Random(14)
    out = tmp_path / "out.h5"
    for attempt in range(4):
        out.unlink(missing_ok=True)  # what this run leaves, not an earlier one's
        sent = signal.SIGTERM if attempt % 2 else signal.SIGINT
        child = subprocess.Popen([sys.executable, "-c", READY_SCORE, "--quiet", "score", str(built["model"]),
                                  str(built["features"]), "-o", str(out), "--threads", "1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CHILD_ENV)
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 1.5))
            child.send_signal(sent)
            _, err = child.communicate(timeout=60)
        finally:
            child.kill()
        assert child.returncode in (0, 130), (child.returncode, err)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert child.returncode == 0 or clean_error(err), err
        assert temp_litter(tmp_path) == []
        if out.exists():
            with art.open_artifact(out, "scores") as f:
                assert art.content_fingerprint(f) == f.attrs["fingerprint"]


AFTER_ENTRY = """
import os, signal, sys, time
from deepuad.cli import entry
try:
    entry(sys.argv[1:])
except SystemExit as done:
    code = done.code
for signum in (signal.SIGINT, signal.SIGTERM):  # a late Ctrl-C or kill, while the interpreter exits
    os.kill(os.getpid(), signum)
time.sleep(0.1)
print("exited", code, flush=True)
"""


def test_a_signal_once_the_command_has_finished_changes_nothing(tmp_path, built):
    """What the random moments above hit now and then, made certain: a signal after the command
    finished, in the interpreter's own exit, neither prints a traceback nor changes the exit status."""
    out = tmp_path / "out.h5"
    done = subprocess.run([sys.executable, "-c", AFTER_ENTRY, "--quiet", "score", str(built["model"]),
                           str(built["features"]), "-o", str(out), "--threads", "1"],
                          capture_output=True, text=True, env=CHILD_ENV, timeout=120)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "exited 0", "")
    with art.open_artifact(out, "scores") as f:
        assert art.content_fingerprint(f) == f.attrs["fingerprint"]


# =========================================================================== 7. memory bombs
def test_small_files_declaring_huge_sizes_are_refused_before_allocating(tmp_path, built):
    """Each case is a small file; the child's peak memory may grow by at most 300 MB over the
    whole list (the cases took 1.4 to 3.5 GB before)."""
    wide = rewrite(copy(built, "model", tmp_path / "wide.h5"), lambda f: f.attrs.__setitem__(
        "architecture", json.dumps({"n_features": 7, "layers": [20_000, 20_000, 20_000, 10], "activation": "tanh"})))
    deep = rewrite(copy(built, "model", tmp_path / "deep.h5"), lambda f: f.attrs.__setitem__(
        "architecture", json.dumps({"n_features": 7, "layers": [4] * 10_000, "activation": "tanh"})))

    def big_chunks(f):
        X = f["X"][()]
        del f["X"]
        f.create_dataset("X", data=X, maxshape=(None, X.shape[1]), chunks=(2**25, X.shape[1]), compression="gzip")
    chunked = rewrite(copy(built, "features", tmp_path / "chunk.h5"), big_chunks)
    cell = tmp_path / "cell.csv.gz"
    with gzip.open(cell, "wb", compresslevel=1) as handle:
        handle.write(b"a,b\n1,")
        for _ in range(40):
            handle.write(b"x" * (1 << 20))
        handle.write(b"\n2,y\n")
    commands = [["score", wide, built["features"], "-o", tmp_path / "o.h5"], ["inspect", deep],
                ["score", deep, built["features"], "-o", tmp_path / "o.h5"],
                ["cluster", chunked, "-o", tmp_path / "o.h5"], ["extract", cell, "-o", tmp_path / "o.h5"]]
    results = run_in_child(tmp_path, commands)
    for args, (code, err, _) in zip(commands, results, strict=True):
        assert code == 3 and clean_error(err), (args, err)
    words = ["inconsistent with its architecture", "layers' has 10,000 entries", "layers' has 10,000 entries", "declares chunks",
             "line longer than"]
    for word, (_, err, _) in zip(words, results):
        assert word in err, err
    assert results[-1][2] < 300, results  # MB of peak growth over all cases
    assert not (tmp_path / "o.h5").exists()


def test_compressed_data_beyond_what_compression_gives_is_refused(tmp_path, capsys, built):
    """A zip member whose declared size no deflate stream could produce from its bytes."""
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", _npy_header((64, 4), payload=b"\0" * (64 * 4 * 8)))
    data = bytearray(path.read_bytes())
    for marker in (b"PK\x03\x04", b"PK\x01\x02"):  # declare 1 GiB uncompressed in both headers
        at = data.index(marker)
        offset = at + (22 if marker == b"PK\x03\x04" else 24)
        data[offset : offset + 4] = (1 << 30).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    refuses(capsys, ["extract", path, "-o", tmp_path / "o.h5"], 3, "more than compression gives", path, tmp_path)


# =========================================================================== 8. extract surprises
def _table(tmp_path, name, header, rows) -> Path:
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _numeric_rows(n=120, typo_at=None, typo="oops"):
    rows = [f"{i},{i * 0.5:.2f},{'bad' if i % 10 == 0 else 'ok'}" for i in range(n)]
    if typo_at is not None:
        rows[typo_at] = f"{typo_at},{typo},ok"
    return rows


@pytest.mark.parametrize("typo", ["oops", "n/a", "1.2.3", "?"])
@pytest.mark.parametrize("chunk_rows", [None, "7", "100000"])
def test_one_typo_in_a_numeric_column_stops_extract_whatever_the_chunking(tmp_path, capsys, typo, chunk_rows):
    for typo_at in (3, 100):  # in the first chunk, and in a later one
        path = _table(tmp_path, f"typo{typo_at}.csv", "a,b,label", _numeric_rows(typo_at=typo_at, typo=typo))
        args = ["extract", path, "--label-column", "label", "--anomaly-values", "bad", "-o", tmp_path / "o.h5"]
        err = refuses(capsys, [*args, *(["--chunk-rows", chunk_rows] if chunk_rows else [])], 4, "--categorical b", path, tmp_path)
        assert f"'{typo}'" in err and f"row {typo_at + 1}" in err, err
        assert run_cli(capsys, *args, "--categorical", "b")[0] == 0  # the user says it is categorical: fine
        (tmp_path / "o.h5").unlink()


@pytest.mark.parametrize("written", ['"1,004.45"', '"1.004,45"', '"12 345"', "1'234"])
def test_numbers_with_thousands_separators_are_not_one_hot_encoded(tmp_path, capsys, written):
    rows = [f"{i},{written}" if i % 3 == 0 else f'{i},"{i + 1},{100 + i:03d}.5"' for i in range(60)]
    path = _table(tmp_path, "money.csv", "a,amount", rows)
    refuses(capsys, ["extract", path, "-o", tmp_path / "o.h5"], 4, "thousands separators", path, tmp_path)


def test_a_real_text_column_is_still_one_hot_encoded(tmp_path, capsys):
    rows = [f"{i},{['tcp', 'udp', 'icmp', '80'][i % 4]}" for i in range(40)]  # one numeric-looking code among text
    path = _table(tmp_path, "proto.csv", "a,proto", rows)
    code, out, err = run_cli(capsys, "extract", path, "-o", tmp_path / "o.h5", "--json")
    assert code == 0, err
    assert json.loads(out)["features"] == 5  # a + four one-hot columns


def test_anomaly_values_that_never_occur_are_refused(tmp_path, capsys):
    path = _table(tmp_path, "t.csv", "a,b,label", _numeric_rows())
    for values in ("nosuch", "bad,nosuch", "BAD", "bad "):
        args = ["extract", path, "--label-column", "label", "--anomaly-values", values, "-o", tmp_path / "o.h5"]
        if values.strip() == "bad":  # surrounding spaces are stripped, as in the data
            assert run_cli(capsys, *args)[0] == 0
            (tmp_path / "o.h5").unlink()
            continue
        err = refuses(capsys, args, 2, "never occur", None, tmp_path)
        assert "'ok'" in err  # shows what the column does hold


@pytest.mark.parametrize("args,words", [
    (["--anomaly-values", "bad"], "--anomaly-values needs --label-column"),
    (["--label-column", "label", "--drop", "label"], "cannot also be given"),
    (["--label-column", "label", "--categorical", "label", "--anomaly-values", "bad"], "cannot also be given"),
])
def test_label_options_that_would_leak_the_label_are_refused(tmp_path, capsys, args, words):
    path = _table(tmp_path, "t.csv", "a,b,label", _numeric_rows())
    refuses(capsys, ["extract", path, *args, "-o", tmp_path / "o.h5"], 2, words, None, tmp_path)


@pytest.mark.parametrize("header", ["a,label,label", "a,b,a,label", "label,a, label"])
def test_a_column_named_twice_is_refused(tmp_path, capsys, header):
    width = len(header.split(","))
    rows = [",".join(["1" if (i + j) % 2 else "0" for j in range(width)]) for i in range(20)]
    path = _table(tmp_path, "dup.csv", header, rows)
    refuses(capsys, ["extract", path, "--label-column", "label", "-o", tmp_path / "o.h5"], 3, "twice", path, tmp_path)


def test_complex_arrays_are_refused_not_truncated(tmp_path, capsys):
    npy, npz = tmp_path / "c.npy", tmp_path / "c.npz"
    np.save(npy, np.array([[1 + 2j, 3], [4, 5j], [6, 7]]))
    np.savez(npz, X=np.ones((5, 2), np.complex64), y=np.zeros(5))
    for path in (npy, npz):
        refuses(capsys, ["extract", path, "-o", tmp_path / "o.h5"], 4, "complex", path, tmp_path)


@pytest.mark.parametrize("option", [["--label-column", "y"], ["--categorical", "x0"], ["--drop", "x0"]])
def test_table_options_on_arrays_are_refused_not_ignored(tmp_path, capsys, option):
    path = tmp_path / "a.npy"
    np.save(path, np.ones((10, 3)))
    refuses(capsys, ["extract", path, *option, "-o", tmp_path / "o.h5"], 2, "apply to CSV/TSV tables only", None, tmp_path)


def test_an_overlong_category_is_refused(tmp_path, capsys):
    rows = [f"{i},{'tcp' if i % 2 else 'udp'}" for i in range(20)] + ["20," + "q" * 5000]
    path = _table(tmp_path, "long.csv", "a,proto", rows)
    refuses(capsys, ["extract", path, "-o", tmp_path / "o.h5"], 4, "too long for a category", path, tmp_path)


def test_an_identifier_column_is_not_one_hot_encoded_into_a_matrix_per_row(tmp_path, capsys):
    """3,000 distinct 'categories' would be 3,000 columns of 3,000 rows: a small CSV, a big matrix."""
    rows = [f"row{i},{i % 7},{'bad' if i % 50 == 0 else 'ok'}" for i in range(3000)]
    path = _table(tmp_path, "ids.csv", "id,a,label", rows)
    args = ["extract", path, "--label-column", "label", "--anomaly-values", "bad", "-o", tmp_path / "o.h5"]
    refuses(capsys, args, 4, "--drop id", path, tmp_path)
    assert run_cli(capsys, *args, "--drop", "id")[0] == 0
