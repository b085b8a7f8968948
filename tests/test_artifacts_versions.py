"""Version-1 files still read, and give what they gave: tests/golden/v1 holds artifacts of every
kind written by the last code that wrote schema version 1 and ``expected.json``, what the commands
gave for them then (tests/golden/v1/make_v1.py). Two of its models are crafted to lack what older
models lack; the version-1 reader supplies it, while a version-2 file without it is refused."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import run_cli
from deepuad import artifacts as art
from deepuad.artifacts import model as model_artifact

V1 = Path(__file__).parent / "golden" / "v1"
spec = importlib.util.spec_from_file_location("make_v1", V1 / "make_v1.py")
make_v1 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_v1)
EXPECTED = json.loads((V1 / "expected.json").read_text())
V1_FILES = sorted(path.name for path in V1.glob("*.h5"))
MODELS = {"kdd.model.h5": "new.scores.h5", "kdd.legacy.model.h5": "new.legacy.scores.h5",
          "kdd.cosine.model.h5": "new.cosine.scores.h5"}


@pytest.fixture
def v1(tmp_path, monkeypatch):
    """A copy of the version-1 files, the working folder (their recorded paths are relative to it)."""
    folder = tmp_path / "v1"
    folder.mkdir()
    for name in V1_FILES:
        shutil.copyfile(V1 / name, folder / name)
    monkeypatch.chdir(folder)
    return folder


def _json(capsys, *args) -> dict:
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def _datasets(path) -> dict:
    """Every dataset's dtype, shape and bytes."""
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, (obj.dtype.str, obj.shape, np.asarray(obj[()]).tobytes()))
                     if isinstance(obj, h5py.Dataset) and obj.dtype.kind != "O" else None)
    return found


def _version(path) -> int:
    with h5py.File(path, "r") as f:
        return int(f.attrs["deepuad_schema_version"])


def test_the_fixtures_are_version_1():
    assert len(V1_FILES) == 12 and all(_version(V1 / name) == 1 for name in V1_FILES)
    assert art.SCHEMA_VERSION == 2


@pytest.mark.parametrize("name", V1_FILES)
def test_inspect_of_a_v1_file_is_what_it_was(v1, capsys, name):
    assert _json(capsys, "inspect", name) == EXPECTED[f"inspect {name}"]


@pytest.mark.parametrize("model", MODELS)
def test_a_v1_model_scores_v1_features_as_it_did(v1, capsys, model):
    """The network and scorer restored from a version-1 model (the crafted ones through the
    fallbacks of the version-1 reader) give the same scores, to the bit, and the same threshold."""
    summary = _json(capsys, "score", model, "new.features.h5", "-o", "again.h5", *make_v1.SCORE)
    key = {"kdd.model.h5": "score", "kdd.legacy.model.h5": "score_legacy", "kdd.cosine.model.h5": "score_cosine"}[model]
    assert {**summary, "output": None} == {**EXPECTED[key], "output": None}
    assert _datasets("again.h5") == _datasets(MODELS[model])
    assert _version("again.h5") == art.SCHEMA_VERSION


def test_top_explain_and_evaluate_of_v1_files_are_what_they_were(v1, capsys):
    assert _json(capsys, "top", "new.scores.h5", "-n", "5", "--explain", "3") == EXPECTED["top"]
    for model in MODELS:
        assert _json(capsys, "explain", model, "new.features.h5", "--top", "3", "-k", "3") == EXPECTED[f"explain {model}"]
    assert _json(capsys, "evaluate", "new.scores.h5") == EXPECTED["evaluate"]


def test_v1_shards_merge_into_the_v1_scores(v1, capsys):
    summary = _json(capsys, "merge-scores", "new.scores.shard-0-of-2.h5", "new.scores.shard-1-of-2.h5", "-o", "merged.h5")
    assert summary == {**EXPECTED["merge"], "output": "merged.h5"}
    merged, scored = _datasets("merged.h5"), _datasets("new.scores.h5")
    assert all(merged[name] == scored[name] for name in ("score", "is_anomaly", "y"))


def test_extract_like_a_v1_features_file_encodes_as_it_did(v1, capsys):
    make_v1.tables(v1)
    summary = _json(capsys, "extract", "new.csv", "--like", "kdd.features.h5", "-o", "again.h5", *make_v1.LABELS)
    assert {**summary, "output": None} == {**EXPECTED["extract_like"], "output": None}
    assert _datasets("again.h5") == _datasets("new.features.h5")


@pytest.mark.parametrize("resume", [False, True])
def test_training_on_v1_files_and_resuming_a_v1_checkpoint_gives_the_v1_model(v1, resume):
    """Training on the version-1 features and clusters trains the version-1 model's network on the
    same selections; so does continuing its version-1 checkpoint (written after the first
    re-selection). What is fitted after training (the scorer, hence the training rows' scores and
    the drift reference) is today's: the range part changed after the fixtures were made."""
    from deepuad.stages.train import checkpoint_path

    if resume:
        shutil.copyfile("kdd.model.checkpoint.h5", checkpoint_path("again.h5"))
    summary = make_v1.train("again.h5", resume="required" if resume else "never")
    assert summary["resumed"] is resume and not checkpoint_path("again.h5").exists()
    trained = lambda path: {name: value for name, value in _datasets(path).items()  # noqa: E731
                            if not name.startswith(("scorer/", "training_scores", "drift_reference/"))}
    assert trained("again.h5") == trained("kdd.model.h5")
    assert any(name.startswith("weights/") for name in trained("again.h5"))
    unchanged = ("scorer/reference", "scorer/reference_kept")  # drawn as they were
    assert {k: _datasets("again.h5")[k] for k in unchanged} == {k: _datasets("kdd.model.h5")[k] for k in unchanged}
    with h5py.File("again.h5", "r") as f:  # the k-NN part's rows: those the reference's tails leave in (trimmed since)
        reference, neighbours = f["scorer/reference"][()], f["scorer/knn/reference"][()]
    assert {tuple(row) for row in neighbours} <= {tuple(row) for row in reference}


# ----------------------------------------------------------------------------- what older models lack
def test_the_v1_reader_supplies_what_older_models_lack(v1):
    arrays, state, _, meta = model_artifact.read("kdd.legacy.model.h5")
    reference = arrays["scorer/reference"]
    np.testing.assert_array_equal(arrays["scorer/score_weights"], np.ones(3))
    np.testing.assert_array_equal(arrays["scorer/reference_kept"], np.ones(len(reference), np.uint8))
    np.testing.assert_array_equal(arrays["scorer/knn/reference"], reference)
    assert state["contamination_estimate"] == meta["contamination_estimate"] == meta["params"]["p"] / 100
    assert {key: meta["params"][key] for key in ("n_neighbors", "p0", "init_by")} == {"n_neighbors": 5, "p0": 35.0,
                                                                                       "init_by": "variance"}
    arrays, state, _, meta = model_artifact.read("kdd.cosine.model.h5")
    assert state["score_parts"] == ["cosine"] and meta["params"]["score"] == "cosine"
    assert meta["contamination_estimate"] == meta["params"]["p"] / 100


def test_the_v1_clusters_reader_supplies_what_older_files_lack(v1):
    from deepuad.artifacts import clusters as clusters_artifact

    with h5py.File("kdd.clusters.h5", "a") as f:
        _without("params.p0", "params.init_by")(f)
    params = clusters_artifact.read("kdd.clusters.h5")["params"]
    assert (params["p0"], params["init_by"]) == (35.0, "variance")


def _without(*fields):
    def edit(f):
        for name in fields:
            where, _, key = name.partition(".")
            if key:
                value = json.loads(f.attrs[where])
                del value[key]
                f.attrs[where] = json.dumps(value)
            elif name in f:
                del f[name]
            else:
                del f.attrs[name]
    return edit


LACKED = ["scorer/score_weights", "scorer/reference_kept", "scorer/knn/reference", "contamination_estimate",
          "state.contamination_estimate", "params.n_neighbors", "params.p0", "params.init_by", "params.score"]


@pytest.mark.parametrize("field", LACKED)
def test_a_v2_model_lacking_what_v1_models_may_lack_is_refused_naming_it(built, tmp_path, capsys, field):
    model = shutil.copyfile(built["model"], tmp_path / "model.h5")
    assert _version(model) == 2
    with h5py.File(model, "a") as f:
        _without(field)(f)
    code, _, err = run_cli(capsys, "score", model, built["features"], "-o", tmp_path / "s.h5")
    assert code == 3 and f"{model}: " in err and f"'{field}' is missing" in err, err


def test_a_v2_clusters_file_without_its_recorded_p0_is_refused(built, tmp_path, capsys):
    clusters = shutil.copyfile(built["clusters"], tmp_path / "clusters.h5")
    with h5py.File(clusters, "a") as f:
        _without("params.p0")(f)
    code, _, err = run_cli(capsys, "train", built["features"], clusters, "-o", tmp_path / "m.h5", "--epochs", "1")
    assert code == 3 and "'params.p0' is missing" in err, err


@pytest.mark.parametrize("version", [0, -1, 3])
def test_a_schema_version_this_deepuad_does_not_know_is_refused(built, tmp_path, capsys, version):
    features = shutil.copyfile(built["features"], tmp_path / "features.h5")
    with h5py.File(features, "a") as f:
        f.attrs["deepuad_schema_version"] = version
    code, _, err = run_cli(capsys, "inspect", features)
    assert code == 3 and f"schema version {version}" in err, err


def test_a_v2_model_with_training_scores_but_not_their_batch_size_is_refused(built, tmp_path, capsys):
    model = shutil.copyfile(built["model"], tmp_path / "model.h5")
    with h5py.File(model, "a") as f:
        del f.attrs["training_scores_batch_rows"]
    code, _, err = run_cli(capsys, "inspect", model)
    assert code == 3 and "'training_scores_batch_rows' is missing" in err, err


def test_a_finished_model_must_hold_the_arrays_each_of_its_parts_stores():
    """What _check_finished requires of a version-2 model, and the schema declares, is what each
    part's fit stores."""
    from deepuad.estimators.parts import PARTS, make

    reference = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    declared = model_artifact.KIND.datasets
    for name in PARTS:
        stored = make(name, n_neighbors=5).fit(reference, 0).state()
        assert set(stored) == set(PARTS[name].stores), name
        assert all(f"scorer/{array}" in declared for array in stored), name
