"""Reliability guarantees (docs/reliability.md): atomic artifacts, provenance checks, one clean
error line for every bad input, files that are data and never code, concurrent writers, and
bit-identical results on CPU.

Tiny data throughout (make_table with 66 rows, a 4-2 autoencoder, 2 epochs): these tests are
about failure behaviour, not detection quality. Subprocesses are used only where the test needs
a real process boundary (a kill, a file size limit, an address space limit, two writers).
"""

import faulthandler
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import (CHILD_ENV, KINDS, ROOT, TRAIN, build_pipeline, clean_error, make_table, replace_dataset, rewrite, run_cli,
                     run_in_child, snapshot, temp_litter, write_scores)
from deepuad import artifacts as art
from deepuad.errors import DataError, EXIT_CODES


# =========================================================================== 1. atomic artifacts
def test_failed_write_keeps_old_bytes_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "s.h5"
    write_scores(path, [1.0, 2.0])
    before = path.read_bytes()
    for failure in (RuntimeError("crash mid-write"), DataError("bad data", "x"), KeyboardInterrupt()):
        with pytest.raises(type(failure)):
            with art.write_artifact(path, "scores", {}, {}) as f:
                art.put(f, "score", np.zeros(100_000, np.float32))
                f.flush()
                raise failure
        assert path.read_bytes() == before  # bytes identical, not merely "still readable"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    with pytest.raises(RuntimeError):  # a new path: nothing created
        with art.write_artifact(tmp_path / "new.h5", "scores", {}, {}):
            raise RuntimeError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


KILLED_WRITER = """
import sys, time
import numpy as np
from deepuad import artifacts as art
path, mode = sys.argv[1], sys.argv[2]
if mode == "hold":  # stop inside the write, with data already on disk under the temporary name
    with art.write_artifact(path, "scores", {"v": "new"}, {}) as f:
        art.put(f, "score", np.full(200_000, 7, np.float32))
        art.put(f, "is_anomaly", np.zeros(200_000, np.int8))
        f.flush()
        print("inside", flush=True)
        time.sleep(120)
i = 0
while True:  # "loop": rewrite the artifact over and over, through Ctrl-Cs; the parent kills it at a random moment
    try:
        while True:
            n = 20_000 + 30_000 * (i % 7)
            with art.write_artifact(path, "scores", {"i": i}, {}) as f:
                art.put(f, "score", np.full(n, i, np.float32), chunked=True)
                art.put(f, "is_anomaly", np.zeros(n, np.int8), chunked=True)
                f.attrs.update(threshold=i + 1.0, contamination=np.nan, metrics="{}")
            print(i, flush=True)
            i += 1
    except KeyboardInterrupt:
        pass
"""


def test_killing_a_writer_leaves_the_old_file_or_a_complete_new_one(tmp_path):
    held, looped = tmp_path / "held.h5", tmp_path / "looped.h5"
    write_scores(held, [1.0, 2.0], {"v": "old"})
    before = held.read_bytes()
    children = {
        mode: subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), mode], stdout=subprocess.PIPE, text=True,
                               env=CHILD_ENV, cwd=tmp_path)
        for mode, path in (("hold", held), ("loop", looped))
    }
    rng = random.Random(0)
    try:
        assert children["hold"].stdout.readline().strip() == "inside"
        children["hold"].kill()
        for _ in range(3):  # a few artifacts complete
            assert children["loop"].stdout.readline().strip().isdigit()
        # Ctrl-C at random moments of the writes: without write_artifact's guard, an interrupt
        # inside HDF5's file driver makes HDF5 segfault on close (3 runs in 4 died of 40 of these)
        for _ in range(40):
            os.kill(children["loop"].pid, signal.SIGINT)
            time.sleep(rng.uniform(0.03, 0.05))  # one interrupt at a time: the child catches each
        assert children["loop"].stdout.readline().strip().isdigit() and children["loop"].poll() is None
        time.sleep(rng.uniform(0.0, 0.05))  # then die at a random point of a write
        children["loop"].kill()
    finally:
        for child in children.values():
            child.kill()
            child.wait()
    assert held.read_bytes() == before  # killed mid-write: the old file, byte for byte
    assert [name.startswith(".held.h5.") for name in temp_litter(tmp_path) if "held" in name] == [True]  # hidden temp left by the kill
    with art.open_artifact(looped, "scores") as f:  # the last complete one: readable, fingerprint valid
        assert art.content_fingerprint(f) == f.attrs["fingerprint"]
        i = art.params_of(f)["i"]
        np.testing.assert_array_equal(art.read_array(f, "score"), np.full(20_000 + 30_000 * (i % 7), i, np.float32))


def test_clean_runs_leave_no_temp_files(built):
    folder = built["features"].parent
    assert temp_litter(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(path.name for path in built.values())


# =========================================================================== 2. provenance
def test_train_refuses_clusters_made_from_other_features(tmp_path, capsys, built):
    other = make_table(tmp_path / "other.csv", n_normal=60, n_anomaly=6, seed=5)
    assert run_cli(capsys, "extract", other, "--label-column", "label", "--anomaly-values", "bad", "-o", tmp_path / "o.h5")[0] == 0
    code, _, err = run_cli(capsys, "train", tmp_path / "o.h5", built["clusters"], "-o", tmp_path / "m.h5", *TRAIN)
    assert code == 5 and clean_error(err) and "different features" in err and str(built["clusters"]) in err
    assert not (tmp_path / "m.h5").exists()
    code, _, err = run_cli(capsys, "train", tmp_path / "o.h5", built["clusters"], "-o", tmp_path / "m.h5", *TRAIN, "--force")
    assert code == 0, err


def test_score_refuses_features_encoded_differently(tmp_path, capsys, built):
    other = tmp_path / "standard.h5"
    run_cli(capsys, "extract", built["table"], "--label-column", "label", "--anomaly-values", "bad", "--scale", "standard", "-o", other)
    code, _, err = run_cli(capsys, "score", built["model"], other, "-o", tmp_path / "s.h5")
    assert code == 5 and clean_error(err) and "encoded differently" in err and str(other) in err
    assert not (tmp_path / "s.h5").exists()
    assert run_cli(capsys, "score", built["model"], other, "-o", tmp_path / "s.h5", "--force")[0] == 0


def test_resume_refuses_a_checkpoint_with_other_parameters(tmp_path, capsys, built):
    model = Path(shutil.copy(built["model"], tmp_path / "m.h5"))
    before = model.read_bytes()
    code, _, err = run_cli(capsys, "train", built["features"], built["clusters"], "-o", model, *TRAIN, "--p", "20", "--resume")
    assert code == 5 and clean_error(err) and "cannot --resume: parameters differ" in err and str(model) in err
    assert model.read_bytes() == before


@pytest.mark.parametrize("kind,command", [
    ("features", ("cluster", "{bad}")), ("clusters", ("train", "{features}", "{bad}")), ("model", ("score", "{bad}", "{features}")),
    ("scores", ("evaluate", "{bad}")), ("model", ("inspect", "{bad}")),
])
def test_newer_schema_is_refused_by_name(tmp_path, capsys, built, kind, command):
    bad = tmp_path / f"newer-{kind}.h5"
    shutil.copy(built[kind], bad)
    with h5py.File(bad, "a") as f:
        f.attrs["deepuad_schema_version"] = art.SCHEMA_VERSION + 1
    args = [a.format(bad=bad, features=built["features"]) for a in command]
    code, _, err = run_cli(capsys, *args, *(["-o", tmp_path / "out.h5"] if args[0] in ("cluster", "train", "score") else []))
    assert code == 3 and clean_error(err), err
    assert f"{bad}: has schema version {art.SCHEMA_VERSION + 1}, newer than this deepuad understands" in err
    assert not (tmp_path / "out.h5").exists()


# =========================================================================== 3. bad input, one table
# Each case: (command line with {placeholders}, expected exit code, words the message must contain,
# the placeholder naming the file the message must name, or None). Placeholders:
#   {features} {clusters} {model} {scores} {table}  the good artifacts (module fixture)
#   {bad}    a broken file made by BAD_FILES[<bad>](tmp, good artifact of the slot's kind)
#   {out}    an existing output file, which must come through unchanged
#   {tmp}    the case's folder; everything in it and in the fixture's folder is compared before/after
#
# Sensible behaviour decided here for the edge cases that may succeed:
#   one row        extract succeeds (finite X); cluster refuses it with exit 4 (a GMM needs >= 2 rows;
#                  nothing can be learnt about "normal" from one row) -> see test_one_row_and_constant_data
#   constant data  succeeds end to end; a constant column encodes to 0 and every score is finite


def _truncated(tmp, good):
    data = good.read_bytes()
    (tmp / "bad.h5").write_bytes(data[: len(data) // 2])


def _plain_hdf5(tmp, good):
    with h5py.File(tmp / "bad.h5", "w") as f:
        f["x"] = np.arange(3)


def _edited(edit):
    def make(tmp, good):
        shutil.copy(good, tmp / "bad.h5")
        with h5py.File(tmp / "bad.h5", "a") as f:
            edit(f, f.attrs["deepuad_kind"])
    return make


REQUIRED = {"features": "X", "clusters": "selected", "model": "epoch_losses", "scores": "score"}
OTHER_KIND = {"features": "scores", "clusters": "features", "model": "clusters", "scores": "model"}


def _wrong_shape(f, kind):
    data = f[REQUIRED[kind]][()]
    replace_dataset(f, REQUIRED[kind], data.reshape(-1)[:, None, None])


def _wrong_dtype(f, kind):
    data = f[REQUIRED[kind]][()]
    replace_dataset(f, REQUIRED[kind], np.array([str(v) for v in data.ravel()], dtype=object).reshape(data.shape),
                    dtype=h5py.string_dtype())


BAD_FILES = {  # name -> (maker or None for "missing", words the message must contain)
    "missing": (None, "no such file"),
    "directory": (lambda tmp, good: (tmp / "bad.h5").mkdir(), "directory"),
    "empty": (lambda tmp, good: (tmp / "bad.h5").write_bytes(b""), "is empty"),
    "not_hdf5": (lambda tmp, good: (tmp / "bad.h5").write_text("a,b\n1,2\n"), "not an HDF5 file"),
    "plain_hdf5": (_plain_hdf5, "not a deepuad artifact"),
    "truncated": (_truncated, "truncated"),
    "no_dataset": (_edited(lambda f, kind: f.__delitem__(REQUIRED[kind])), "is missing"),
    "wrong_shape": (_edited(_wrong_shape), "dimensions"),
    "wrong_dtype": (_edited(_wrong_dtype), "dtype"),
    "wrong_kind": ("other kind", "artifact, expected"),
}
SLOTS = {  # slot -> (kind of the file in {bad}, command line)
    "cluster": ("features", "cluster {bad} --clusters 3 -o {out}"),
    "train/features": ("features", "train {bad} {clusters} -o {out} " + " ".join(TRAIN)),
    "train/clusters": ("clusters", "train {features} {bad} -o {out} " + " ".join(TRAIN)),
    "score/model": ("model", "score {bad} {features} -o {out}"),
    "score/features": ("features", "score {model} {bad} -o {out}"),
    "evaluate": ("scores", "evaluate {bad}"),
    "evaluate/labels": ("features", "evaluate {scores} --labels {bad}"),
    "inspect": ("model", "inspect {bad}"),
    "baseline": ("features", "baseline {bad} -o {out}"),
    "extract/like": ("features", "extract {table} --like {bad} -o {out}"),
}
FILE_CASES = [
    pytest.param(SLOTS[slot][1], 3, BAD_FILES[bad][1], "bad", (bad, SLOTS[slot][0]), id=f"{slot}:{bad}")
    for slot in SLOTS for bad in BAD_FILES if not (slot == "inspect" and bad == "wrong_kind")
]


def _nonfinite(value):
    def edit(f):
        X = f["X"][()]
        X[3, 1] = value
        f["X"][...] = X
    return edit


def _zero_rows(f):
    for name in ("X", "y", "ids"):
        data = f[name][()]
        replace_dataset(f, name, data[:0], maxshape=(None, *data.shape[1:]), chunks=(1, *data.shape[1:]))


DATA_FILES = {  # {name} placeholders for edited (and re-fingerprinted) copies of the good features
    "nan": _nonfinite(np.nan), "inf": _nonfinite(np.inf), "ninf": _nonfinite(-np.inf), "zero": _zero_rows,
}
MODEL_FILES = {  # the same for the good model
    "badweights": lambda f: replace_dataset(f, "weights/encoder.0.weight", np.zeros((3, 3), np.float32)),
}
RAW_FILES = {  # {name} placeholders for raw inputs to extract: (file name, bytes)
    "nan_csv": ("nan.csv", b"a,b\n1,2\n3,\n"),
    "nan_text_csv": ("nantext.csv", b"a,b\n1,2\nnan,4\n5,6\n"),
    "inf_csv": ("inf.csv", b"a,b\n1,2\ninf,4\n"),
    "ninf_csv": ("ninf.csv", b"a,b\n1,2\n-inf,4\n"),
    "header_csv": ("header.csv", b"a,b\n"),
    "ragged_csv": ("ragged.csv", b"a,b\n1,2\n3,4,5\n6,7\n"),
    "latin1_csv": ("latin1.csv", "a,name\n1,caf\xe9\n2,na\xefve\n".encode("latin-1")),
    "binary_csv": ("binary.csv", bytes(range(256)) * 8),
    "empty_csv": ("empty.csv", b""),
    "w3_csv": ("w3.csv", ("a,b,c\n" + "".join(f"{i},{i % 3},{i * i % 7}\n" for i in range(30))).encode()),
}


def _npy(name, array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return name, buffer.getvalue()


RAW_FILES.update(
    nan_npy=_npy("nan.npy", np.array([[1.0, np.nan], [2.0, 3.0]])),
    empty_npy=_npy("empty.npy", np.zeros((0, 3))),
    object_npy=_npy("object.npy", np.array([[1, "a"]], dtype=object)),
)

NO_GPU = not __import__("torch").cuda.is_available()


OTHER_CASES = [
    # --- NaN / inf / zero rows in a features artifact: exit 4 for every command that reads X
    *[pytest.param(line.replace("{data}", "{" + name + "}"), 4, words, name, None, id=f"{line.split()[0]}:{name}")
      for name, words in (("nan", "NaN or infinite"), ("inf", "NaN or infinite"), ("ninf", "NaN or infinite"))
      for line in ("cluster {data} -o {out}", "train {data} {clusters} -o {out} --force " + " ".join(TRAIN),
                   "score {model} {data} -o {out}", "baseline {data} -o {out}")],
    pytest.param("cluster {zero} -o {out}", 4, "empty", "zero", None, id="cluster:zero-rows"),
    pytest.param("train {zero} {clusters} -o {out} --force " + " ".join(TRAIN), 4, "empty", "zero", None, id="train:zero-rows"),
    pytest.param("score {model} {zero} -o {out}", 4, "no rows", "zero", None, id="score:zero-rows"),
    pytest.param("baseline {zero} -o {out}", 4, "empty", "zero", None, id="baseline:zero-rows"),
    pytest.param("inspect {zero}", 0, "", None, None, id="inspect:zero-rows"),
    # --- a model whose weights do not fit its architecture (torch's message spans lines: still one line)
    pytest.param("score {badweights} {features} -o {out}", 3, "inconsistent with its architecture", "badweights", None,
                 id="score:weights-of-wrong-shape"),
    # --- a features file of another width
    pytest.param("score {model} {w3} -o {out}", 5, "encoded differently", "w3", None, id="score:other-width"),
    pytest.param("score {model} {w3} -o {out} --force", 4, "has 3 features but the model expects 7", "w3", None, id="score:width-forced"),
    # --- raw input to extract
    pytest.param("extract {tmp}/missing.csv -o {out}", 3, "no such file", "tmp", None, id="extract:missing"),
    # the output beside the folder: one inside the folder it reads is refused (exit 6, tests/test_cli_hostile.py)
    pytest.param("extract {tmp} -o {tmp}.out.h5", 3, "no feature files", "tmp", None, id="extract:directory"),
    pytest.param("extract {empty_csv} -o {out}", 3, "is empty", "empty_csv", None, id="extract:empty"),
    pytest.param("extract {binary_csv} -o {out}", 3, "NUL byte", "binary_csv", None, id="extract:binary"),
    pytest.param("extract {features} -o {out}", 3, "is an HDF5 file", "features", None, id="extract:hdf5"),
    pytest.param("extract {header_csv} -o {out}", 4, "no data rows", "header_csv", None, id="extract:zero-rows"),
    pytest.param("extract {nan_csv} -o {out}", 4, "missing, non-numeric or infinite", "nan_csv", None, id="extract:nan-empty-field"),
    pytest.param("extract {nan_text_csv} -o {out}", 4, "(value 'nan')", "nan_text_csv", None, id="extract:nan-text"),
    pytest.param("extract {inf_csv} -o {out}", 4, "(value 'inf')", "inf_csv", None, id="extract:inf"),
    pytest.param("extract {ninf_csv} -o {out}", 4, "(value '-inf')", "ninf_csv", None, id="extract:-inf"),
    pytest.param("extract {ragged_csv} -o {out}", 3, "expected 2 fields in line 3, saw 3", "ragged_csv", None, id="extract:ragged"),
    pytest.param("extract {latin1_csv} -o {out}", 3, "not valid utf-8", "latin1_csv", None, id="extract:latin-1"),
    pytest.param("extract {table} --label-column nope -o {out}", 2, "label column 'nope' is not in", "table", None, id="extract:no-label-column"),
    pytest.param("extract {nan_npy} -o {out}", 4, "NaN or infinite", "nan_npy", None, id="extract:npy-nan"),
    pytest.param("extract {empty_npy} -o {out}", 4, "X is empty", "empty_npy", None, id="extract:npy-zero-rows"),
    pytest.param("extract {object_npy} -o {out}", 3, "without unpickling, refused", "object_npy", None, id="extract:npy-pickle"),
    pytest.param("extract {table} --type numpy -o {out}", 3, "not a .npy or .npz file", "table", None, id="extract:csv-as-numpy"),
    pytest.param("extract {table} --encoding no-such-codec -o {out}", 2, "--encoding", None, None, id="extract:unknown-encoding"),
    pytest.param("extract {table} --scale bogus -o {out}", 2, "--scale", None, None, id="extract:scale"),
    pytest.param("extract {table} --chunk-rows 0 -o {out}", 2, "--chunk-rows", None, None, id="extract:chunk-rows"),
    # --- outputs that cannot be written: exit 6 before any work
    *[pytest.param(line + " -o {tmp}/no/such/folder/x.h5", 6, "does not exist", "tmp", None, id=f"{line.split()[0]}:missing-folder")
      for line in ("extract {table}", "cluster {features}", "train {features} {clusters} " + " ".join(TRAIN),
                   "score {model} {features}", "baseline {features}")],
    *[pytest.param(line + " -o {tmp}", 6, "is a directory", "tmp", None, id=f"{line.split()[0]}:output-is-folder")
      for line in ("extract {table}", "cluster {features}", "score {model} {features}")],
    *[pytest.param(line + " -o {tmp}/readonly/x.h5", 6, "is not writable", "tmp", None, id=f"{line.split()[0]}:unwritable-folder")
      for line in ("extract {table}", "cluster {features}", "train {features} {clusters} " + " ".join(TRAIN),
                   "score {model} {features}", "baseline {features}")],
    pytest.param("evaluate {scores} --plots {out}", 6, "cannot create folder", "out", None, id="evaluate:plots-is-a-file"),
    pytest.param("run {table} -o {out} --label-column label --anomaly-values bad", 6, "cannot create folder", "out", None, id="run:folder-is-a-file"),
    # --- invalid option values: exit 2 (7 for a GPU that is not there)
    *[pytest.param(f"cluster {{features}} --p0 {v} -o {{out}}", 2, "--p0 must be a number in (0, 100)", None, None, id=f"cluster:p0={v}")
      for v in ("0", "100", "-5", "150")],
    pytest.param("run {table} -o {tmp}/run --p0 0", 2, "--p0", None, None, id="run:p0=0"),
    pytest.param("train {features} {clusters} -o {out} --r 0", 2, "--r must be an integer >= 1", None, None, id="train:r=0"),
    pytest.param("train {features} {clusters} -o {out} --lr -1", 2, "lr must be a positive number", None, None, id="train:lr<0"),
    pytest.param("train {features} {clusters} -o {out} --lr nan", 2, "lr must be a positive number", None, None, id="train:lr=nan"),
    pytest.param("train {features} {clusters} -o {out} --p 100", 2, "--p must be a number in (0, 100)", None, None, id="train:p=100"),
    pytest.param("train {features} {clusters} -o {out} --batch-size 0", 2, "--batch-size", None, None, id="train:batch-size=0"),
    pytest.param("train {features} {clusters} -o {out} --epochs -1", 2, "epochs", None, None, id="train:epochs<0"),
    pytest.param("train {features} {clusters} -o {out} --layers 4,0", 2, "--layers", None, None, id="train:layers"),
    pytest.param("train {features} {clusters} -o {out} --threads 0", 2, "--threads", None, None, id="train:threads=0"),
    pytest.param("train {features} {clusters} -o {out} --device tpu", 2, "--device must be", None, None, id="train:device=tpu"),
    pytest.param("score {model} {features} -o {out} --device tpu", 2, "--device must be", None, None, id="score:device=tpu"),
    pytest.param("score {model} {features} -o {out} --contamination 0.9", 2, "--contamination", None, None, id="score:contamination"),
    pytest.param("score {model} {features} -o {out} --threshold nan", 2, "--threshold", None, None, id="score:threshold=nan"),
    pytest.param("cluster {features} -o {out} --clusters 0", 2, "--clusters", None, None, id="cluster:clusters=0"),
    pytest.param("cluster {features} -o {out} --method dbscan", 2, "--method", None, None, id="cluster:method"),
    pytest.param("baseline {features} -o {out} --method nope", 2, "--method", None, None, id="baseline:method"),
    pytest.param("train {features} {clusters} --bogus", 2, "no such option", None, None, id="train:unknown-option"),
    *[pytest.param(line + " --device cuda", 7, "no CUDA GPU", None, None, id=f"{line.split()[0]}:cuda-without-gpu",
                   marks=pytest.mark.skipif(not NO_GPU, reason="a GPU is present"))
      for line in ("train {features} {clusters} -o {out}", "score {model} {features} -o {out}",
                   "baseline {features} --method ae -o {out}")],
    # --- option values that must be refused with exit 2 before any work
    pytest.param("cluster {features} -o {out} --percentile-over bogus", 2, "--percentile-over", None, None,
                 id="cluster:percentile-over"),
    pytest.param("cluster {features} -o {out} --covariance bogus", 2, "--covariance", None, None,
                 id="cluster:covariance"),
    pytest.param("cluster {features} -o {out} --fit-sample 0", 2, "--fit-sample", None, None,
                 id="cluster:fit-sample=0"),
    pytest.param("cluster {features} -o {out} --min-fraction 2", 2, "--min-fraction", None, None,
                 id="cluster:min-fraction=2"),
    pytest.param("cluster {features} -o {out} --seed -1", 2, "--seed", None, None,
                 id="cluster:seed<0"),
    pytest.param("train {features} {clusters} -o {out} --reselect-sample 1 " + " ".join(TRAIN), 2, "--reselect-sample", None, None,
                 id="train:reselect-sample=1"),
    pytest.param("train {features} {clusters} -o {out} --min-fraction 2 " + " ".join(TRAIN), 2, "--min-fraction", None, None,
                 id="train:min-fraction=2"),
    pytest.param("baseline {features} -o {out} --method ae --epochs 0", 2, "--epochs", None, None,
                 id="baseline:epochs=0"),
    pytest.param("baseline {features} -o {out} --method ae --lr -1", 2, "--lr", None, None,
                 id="baseline:lr<0"),
]


def _deny_writes(folder, monkeypatch):
    """An unwritable folder: read-only permissions, and for root (whom permissions do not stop)
    the permission check itself answers "no" for this folder."""
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder and mode & os.W_OK else real_access(p, mode, **kw))


@pytest.mark.parametrize("line,code,words,named,bad", FILE_CASES + OTHER_CASES)
def test_bad_input_gives_one_clean_error_and_changes_nothing(tmp_path, capsys, monkeypatch, built, line, code, words, named, bad):
    places = {key: str(value) for key, value in built.items()}
    places.update(tmp=str(tmp_path), out=str(tmp_path / "out.h5"))
    shutil.copy(built["scores"], tmp_path / "out.h5")  # an existing output: must come through unchanged
    if bad is not None:
        which, kind = bad
        maker = BAD_FILES[which][0]
        if maker == "other kind":
            shutil.copy(built[OTHER_KIND[kind]], tmp_path / "bad.h5")
        elif maker is not None:
            maker(tmp_path, built[kind])
        places["bad"] = str(tmp_path / "bad.h5")
    for kind, edits in (("features", DATA_FILES), ("model", MODEL_FILES)):
        for name, edit in edits.items():
            if "{" + name + "}" in line:
                places[name] = str(rewrite(Path(shutil.copy(built[kind], tmp_path / f"{name}.h5")), edit))
    for name, (file_name, content) in RAW_FILES.items():
        if "{" + name + "}" in line:
            (tmp_path / file_name).write_bytes(content)
            places[name] = str(tmp_path / file_name)
    if "{w3}" in line:
        (tmp_path / "w3.csv").write_bytes(RAW_FILES["w3_csv"][1])
        assert run_cli(capsys, "extract", tmp_path / "w3.csv", "-o", tmp_path / "w3.h5")[0] == 0
        places["w3"] = str(tmp_path / "w3.h5")
    if "readonly" in line:
        _deny_writes(tmp_path / "readonly", monkeypatch)
    args = [part.format(**places) for part in line.split()]
    before = snapshot(tmp_path, built["features"].parent)

    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:  # pytest would hide them from stderr
        warnings.simplefilter("always")
        result, out, err = run_cli(capsys, *args)
    assert time.monotonic() - started < 60

    assert snapshot(tmp_path, built["features"].parent) == before, "an output file was created or changed"
    if code == 0:
        assert result == 0 and err == "", err
        assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
        return
    assert result == code, (result, err)
    assert code in EXIT_CODES
    assert clean_error(err), err
    assert words.lower() in err.lower(), err
    if named:
        assert places[named] in err, err  # the message names the file


def test_one_row_and_constant_data(tmp_path, capsys):
    """One row: extract succeeds with finite X; cluster refuses with exit 4 (GMM needs 2 rows).
    A constant column, and even identical rows, run end to end with finite outputs."""
    one = tmp_path / "one.csv"
    one.write_text("a,b,label\n1,2,0\n")
    assert run_cli(capsys, "extract", one, "--label-column", "label", "-o", tmp_path / "one.h5")[0] == 0
    with art.open_artifact(tmp_path / "one.h5") as f:
        assert np.isfinite(art.read_array(f, "X")).all()
    code, _, err = run_cli(capsys, "cluster", tmp_path / "one.h5", "-o", tmp_path / "c1.h5")
    assert code == 4 and clean_error(err) and str(tmp_path / "one.h5") in err and not (tmp_path / "c1.h5").exists()

    for name, row in (("const", lambda i: f"1,{i % 7},{int(i % 7 == 3)}"), ("same", lambda i: f"1,5,{int(i == 3)}")):
        table = tmp_path / f"{name}.csv"
        table.write_text("a,b,label\n" + "\n".join(row(i) for i in range(40)) + "\n")
        f, c, m, s = (tmp_path / f"{name}.{k}.h5" for k in "fcms")
        assert run_cli(capsys, "extract", table, "--label-column", "label", "-o", f)[0] == 0
        assert run_cli(capsys, "cluster", f, "--clusters", "3", "-o", c)[0] == 0
        assert run_cli(capsys, "train", f, c, "-o", m, *TRAIN)[0] == 0
        code, out, err = run_cli(capsys, "score", m, f, "-o", s, "--json")
        assert code == 0, err
        with art.open_artifact(f) as h:
            X = art.read_array(h, "X")
            assert np.isfinite(X).all() and (X[:, 0] == 0).all()  # the constant column encodes to 0
        with art.open_artifact(s) as h:
            assert np.isfinite(art.read_array(h, "score")).all()
        assert np.isfinite(json.loads(out)["threshold"])


def test_full_disk_is_a_clean_error_and_keeps_the_old_output(tmp_path, built):
    """Writes fail with EFBIG beyond RLIMIT_FSIZE (SIGXFSZ ignored): the same path as ENOSPC.
    HDF5 segfaults on close after a failed write (h5py issue 914); write_artifact must not let it."""
    out = tmp_path / "out.h5"
    shutil.copy(built["scores"], out)
    b = {k: str(v) for k, v in built.items()}
    commands = [
        (8 << 10, ["extract", b["table"], "-o", str(out)]),
        (300 << 10, ["extract", b["table"], "-o", str(out)]),  # fails inside X, after the metadata
        (8 << 10, ["cluster", b["features"], "--clusters", "3", "-o", str(out)]),
        # fails on the last flush; --quiet: the progress line before it is not what is tested
        (40 << 10, ["--quiet", "train", b["features"], b["clusters"], "-o", str(out), *TRAIN]),
        (8 << 10, ["score", b["model"], b["features"], "-o", str(out)]),
        (8 << 10, ["baseline", b["features"], "-o", str(out)]),
    ]
    before = snapshot(tmp_path, built["features"].parent)

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    results = run_in_child(tmp_path, [args for _, args in commands], [limit for limit, _ in commands], limit_file_size)
    for (limit, args), (code, err, _) in zip(commands, results, strict=True):
        assert code == 6 and clean_error(err), (args[0], limit, err)
        assert f"{out}: file too large" in err and "nothing was written" in err, err
    assert snapshot(tmp_path, built["features"].parent) == before  # old output intact, no temp files


# =========================================================================== 4. files are data, not code
def test_no_code_path_can_unpickle():
    """Nothing in the package may unpickle: no pickle, no torch.load, no np.load without
    allow_pickle=False. torch.jit.load is allowed only behind `extract --model` (the user's own
    TorchScript model, documented as running its code)."""
    forbidden = [r"\bpickle\.loads?\(", r"\btorch\.load\(", r"allow_pickle\s*=\s*True", r"\bcloudpickle\b", r"\bjoblib\.load\(",
                 r"\bdill\b", r"\bmarshal\.loads?\(", r"(?<![.\w])eval\(", r"(?<![.\w])exec\(", r"\bshelve\b", r"\bpd\.read_pickle\("]
    found = []
    for source in sorted((ROOT / "deepuad").rglob("*.py")):  # every module, sub-packages included
        text = source.read_text()
        for pattern in forbidden:
            found += [f"{source.name}: {m.group(0)}" for m in re.finditer(pattern, text)]
        for call in re.finditer(r"\bnp\.load\(([^)]*)\)", text):
            if "allow_pickle=False" not in call.group(1):
                found.append(f"{source.name}: np.load without allow_pickle=False")
        if "torch.jit.load(" in text and source.name != "torchscript.py":
            found.append(f"{source.name}: torch.jit.load outside extract --model")
    assert found == []
    assert len(re.findall(r"torch\.jit\.load\(", (ROOT / "deepuad" / "inputs" / "torchscript.py").read_text())) == 1


def _fuzz_variants(built, folder: Path, seed=20240601):
    """~40 corrupted copies of the four artifacts: (name, kind, path)."""
    rng = random.Random(seed)
    variants = []

    def new(kind, tag):
        path = folder / f"{kind}-{tag}-{len(variants)}.h5"
        shutil.copy(built[kind], path)
        variants.append((f"{kind}:{tag}", kind, path))
        return path

    for kind in KINDS:
        with h5py.File(built[kind], "r") as f:
            names = [name for name, _ in art._datasets(f)]
            root_attrs = list(f.attrs)
        for _ in range(3):  # flipped bytes at random offsets
            path = new(kind, "flip")
            data = bytearray(path.read_bytes())
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(data))
        for _ in range(2):  # truncation
            path = new(kind, "truncate")
            data = path.read_bytes()
            path.write_bytes(data[: rng.randrange(1, len(data))])
        with h5py.File(new(kind, "dtype"), "a") as f:  # a dataset rewritten with another dtype
            name = rng.choice(names)
            replace_dataset(f, name, np.zeros(f[name].shape, dtype=rng.choice(["S3", "f8", "i1", "c8"])))
        with h5py.File(new(kind, "shape"), "a") as f:  # ... with another shape
            name = rng.choice(names)
            replace_dataset(f, name, np.zeros(rng.choice([(), (2,), (3, 2, 1), (len(f[name]) + 5 if f[name].ndim else 4,)]),
                                              dtype=f[name].dtype if f[name].dtype.kind != "O" else "f4"))
        for chunked in (False, True):  # ... declaring 2**40 rows and storing nothing
            with h5py.File(new(kind, "huge-chunked" if chunked else "huge"), "a") as f:
                name = REQUIRED[kind] if chunked else rng.choice(names)
                dataset = f[name]
                shape, dtype = (2**40, *dataset.shape[1:]), dataset.dtype if dataset.dtype.kind != "O" else "f4"
                del f[name]
                f.create_dataset(name, shape=shape, dtype=dtype, **({"chunks": (1024, *shape[1:])} if chunked else {}))
        with h5py.File(new(kind, "attr-deleted"), "a") as f:
            del f.attrs[rng.choice(root_attrs)]
        with h5py.File(new(kind, "attr-garbage"), "a") as f:
            name = rng.choice(root_attrs)
            f.attrs[name] = rng.choice(['{"unterminated": ', "[]", "null", '"text"', "NaN", np.int64(-7), np.float64(np.nan)])
    return variants


# kind -> command lines that read a file of that kind ({bad}); {out} is a fresh output path
FUZZ_READERS = {
    "features": ["cluster {bad} --clusters 3 -o {out}", "score {model} {bad} -o {out} --force", "inspect {bad}"],
    "clusters": ["train {features} {bad} -o {out} " + " ".join(TRAIN), "inspect {bad}"],
    "model": ["score {bad} {features} -o {out}", "inspect {bad}"],
    "scores": ["evaluate {bad}", "inspect {bad}"],
}


@pytest.mark.slow  # a seeded fuzzer: 44 corrupted artifacts through every reader
def test_corrupted_artifacts_fail_cleanly(tmp_path, capsys, built):
    variants = _fuzz_variants(built, tmp_path)
    assert len(variants) == 44  # 11 per kind
    places = {key: str(value) for key, value in built.items()}
    outcomes = {}
    for name, kind, path in variants:
        for line in FUZZ_READERS[kind]:
            out = tmp_path / "out.h5"
            args = [part.format(**places, bad=path, out=out) for part in line.split()]
            faulthandler.dump_traceback_later(120, exit=True, file=sys.__stderr__)  # a hang ends the run loudly instead of forever
            started = time.monotonic()
            try:
                code, _, err = run_cli(capsys, *args)
            finally:
                faulthandler.cancel_dump_traceback_later()
            assert time.monotonic() - started < 60, (name, line)
            assert code in (0, 3, 4, 5), (name, line, code, err)
            if code:
                assert clean_error(err) and str(path) in err, (name, line, err)
                assert not out.exists(), (name, line)
            out.unlink(missing_ok=True)
            outcomes[f"{name} | {args[0]}"] = code
    assert temp_litter(tmp_path) == []
    assert sum(code == 3 for code in outcomes.values()) >= 40  # most corruptions are caught as such, not by luck


def test_huge_declared_shapes_fail_without_allocating(tmp_path, built):
    """A dataset declaring 2**40 rows with nothing stored: refused from its metadata, in a child
    whose address space is capped at 3 GiB (an attempt to allocate would be a MemoryError, exit 1)."""
    commands = []
    for kind, name, line in (("features", "X", "score {model} {bad} -o {out} --force"), ("features", "X", "cluster {bad} -o {out}"),
                             ("model", "weights/encoder.0.weight", "score {bad} {features} -o {out}"),
                             ("model", "rng_state", "inspect {bad}"), ("scores", "score", "evaluate {bad}"),
                             ("clusters", "assignment", "inspect {bad}"), ("features", "feature_names", "inspect {bad}")):
        for chunked in (False, True):
            bad = tmp_path / f"{kind}-{name.replace('/', '_')}-{chunked}.h5"
            shutil.copy(built[kind], bad)
            with h5py.File(bad, "a") as f:
                dataset = f[name]
                shape, dtype = (2**40, *dataset.shape[1:]), dataset.dtype if dataset.dtype.kind != "O" else h5py.string_dtype()
                del f[name]
                f.create_dataset(name, shape=shape, dtype=dtype, **({"chunks": (1024, *shape[1:])} if chunked else {}))
            commands.append([part.format(**{k: str(v) for k, v in built.items()}, bad=bad, out=tmp_path / "out.h5")
                             for part in line.split()])
    results = run_in_child(tmp_path, commands, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)))
    for args, (code, err, _) in zip(commands, results, strict=True):
        assert code == 3 and clean_error(err), (args, err)
        assert "declares" in err or "unreadable" in err, (args, err)
    assert not (tmp_path / "out.h5").exists()


# =========================================================================== 5. two writers
def test_two_concurrent_writers_leave_one_complete_artifact(tmp_path, capsys):
    tables = [make_table(tmp_path / "a.csv", n_normal=90, n_anomaly=10, seed=1),
              make_table(tmp_path / "b.csv", n_normal=140, n_anomaly=10, seed=2)]
    expected = []
    for table in tables:  # what each writer alone produces
        reference = tmp_path / f"{table.stem}.ref.h5"
        assert run_cli(capsys, "extract", table, "-o", reference)[0] == 0
        with art.open_artifact(reference) as f:
            expected.append(art.read_array(f, "X"))
        reference.unlink()
    out = tmp_path / "same.h5"
    writers = [subprocess.Popen([sys.executable, "-m", "deepuad", "--quiet", "extract", str(t), "-o", str(out)], env=CHILD_ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for t in tables]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    with art.open_artifact(out, "features") as f:
        assert art.content_fingerprint(f) == f.attrs["fingerprint"]
        X = art.read_array(f, "X")
        assert len(art.read_array(f, "ids")) == len(X)
    assert any(X.shape == e.shape and np.array_equal(X, e) for e in expected)  # one writer's file, whole
    assert temp_litter(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "same.h5"]


# =========================================================================== 6. determinism
def _bits(value):
    """A value as comparable bits: NaN equals NaN, strings stay strings."""
    if isinstance(value, (str, bytes)):
        return value
    value = np.asarray(value)
    return value.tolist() if value.dtype.kind == "O" else (value.dtype.str, value.shape, value.tobytes())


def _content(path: Path) -> dict:
    """Every dataset's dtype, shape and bits, and every attribute but 'created' (and paths in 'inputs')."""
    content = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: _bits(v) for k, v in obj.attrs.items()}
            content[name] = (_bits(obj[()]), attrs) if isinstance(obj, h5py.Dataset) else attrs
        f.visititems(visit)
        attrs = {k: _bits(v) for k, v in f.attrs.items() if k not in ("created", "inputs")}
        attrs["inputs"] = {role: source.get("fingerprint") or source.get("sha256") for role, source in art.inputs_of(f).items()}
        content["/"] = attrs
    return content


def test_same_inputs_seed_and_threads_give_bit_identical_artifacts(tmp_path, built):
    again = build_pipeline(tmp_path, built["table"])
    for kind in KINDS:
        first, second = _content(built[kind]), _content(again[kind])
        assert first.keys() == second.keys(), kind
        for name in first:
            assert first[name] == second[name], (kind, name)
