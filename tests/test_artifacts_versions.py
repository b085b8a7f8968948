"""Version-1 files still read, and give what they gave: tests/golden/v1 holds artifacts of every
kind written by the last code that wrote schema version 1 and ``expected.json``, what the commands
gave for them then (tests/golden/v1/make_v1.py). Two of its models are crafted to lack what older
models lack; the version-1 reader supplies it, while a version-2 file without it is refused.

What only reads files (inspect, merge-scores, extract --like, evaluate) must give what it gave to
the bit. What runs the network (score, explain, train) gives it to the bit on the kind of CPU that
wrote the fixtures, and there the exact comparison is all that runs. Another kind rounds float32
matrix products differently in the last bits (tests/golden/golden_run.py says what a kind is; the
fixtures' kind is not recorded), so there the result must equal the fixtures within rounding:

- ``score``: (a) today's score command fed the version-1 scores in place of the network's gives
  the version-1 summary and datasets: the threshold, the flags, the metrics and the drift, the
  parts that hang on the order of tied scores (the KDD rows hold 60 distinct scores in 100, so a
  last-bit change flips ties and moved AUPRC from 0.299 to 0.240 and the score's PSI from 1.18 to
  1.47 on an AMD EPYC), are computed from the very same scores; (b) the network's own scores are
  the version-1 ones within ``ROUNDING``, ``is_anomaly`` is theirs except for rows scored within
  rounding of the threshold, the drift per column is theirs unless a row is scored within rounding
  of the model's drift cut, and the summary fields that no tie decides are theirs. The fields that
  ties decide are, in (b), what the code checked in (a) derives from (b)'s scores.
- ``explain`` and the explanations of ``top``: numbers within rounding, on the scale of the row's
  score (a contribution is the difference of two scores); rows and columns ranked by a number that
  ties within rounding may swap places, or swap in at the cut (``_ranked_differences``); every
  selection, count and text exactly.
- ``train``: the weights, optimiser state and losses within ``TRAINING`` of each array's largest
  value, every selection and the random state exactly.
"""

from __future__ import annotations

import importlib.util
import json
import math
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


def _arrays(path) -> dict[str, np.ndarray]:
    """Every dataset but those of text."""
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, np.asarray(obj[()]))
                     if isinstance(obj, h5py.Dataset) and obj.dtype.kind != "O" else None)
    return found


def _datasets(path) -> dict:
    """Every dataset's dtype, shape and bytes."""
    return _bytes(_arrays(path))


def _bytes(arrays: dict[str, np.ndarray]) -> dict:
    return {name: (array.dtype.str, array.shape, array.tobytes()) for name, array in arrays.items()}


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
def test_a_v1_model_scores_v1_features_as_it_did(v1, capsys, monkeypatch, model):
    """The network and scorer restored from a version-1 model (the crafted ones through the
    fallbacks of the version-1 reader) give the same scores and the same threshold: to the bit on
    the fixtures' kind of CPU, else within rounding as the module's docstring says."""
    summary = _json(capsys, "score", model, "new.features.h5", "-o", "again.h5", *make_v1.SCORE)
    assert _version("again.h5") == art.SCHEMA_VERSION
    key = {"kdd.model.h5": "score", "kdd.legacy.model.h5": "score_legacy", "kdd.cosine.model.h5": "score_cosine"}[model]
    expected, stored = {**EXPECTED[key], "output": None}, MODELS[model]
    if {**summary, "output": None} == expected and _datasets("again.h5") == _datasets(stored):
        return  # to the bit
    # (a) fed the version-1 scores, today's score command gives the version-1 summary and datasets
    _score_as_stored(monkeypatch, stored)
    given = _json(capsys, "score", model, "new.features.h5", "-o", "given.h5", *make_v1.SCORE)
    found = _differences(expected, {**given, "output": None}, "summary fed the v1 scores")
    found += _dataset_differences(stored, "given.h5", "fed the v1 scores", fed=True)
    # (b) the network's own scores, and what follows from them where no tie decides
    found += _dataset_differences(stored, "again.h5", "scored")
    untied = lambda fields: {k: v for k, v in fields.items() if k not in TIE_SENSITIVE}  # noqa: E731
    found += _differences(untied(expected), untied({**summary, "output": None}), "summary")
    assert summary["anomalies_flagged"] == int(_arrays("again.h5")["is_anomaly"].sum())
    assert not found, "\n".join(found[:40])


def test_top_explain_and_evaluate_of_v1_files_are_what_they_were(v1, capsys):
    """To the bit on the fixtures' kind of CPU; elsewhere explain's numbers within rounding, and
    rows or columns tied within rounding in any order (see ``_differences``). top and evaluate
    read the stored scores, so only top's explanations (from the model) can move."""
    outputs = {"top": _json(capsys, "top", "new.scores.h5", "-n", "5", "--explain", "3"),
               **{f"explain {model}": _json(capsys, "explain", model, "new.features.h5", "--top", "3", "-k", "3")
                  for model in MODELS},
               "evaluate": _json(capsys, "evaluate", "new.scores.h5")}
    assert outputs["evaluate"] == EXPECTED["evaluate"]  # the stored scores alone: to the bit anywhere
    for name, output in outputs.items():
        found = [] if output == EXPECTED[name] else _differences(EXPECTED[name], output, name)
        assert not found, "\n".join(found[:40])


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
    trained = lambda path: {name: value for name, value in _arrays(path).items()  # noqa: E731
                            if not name.startswith(("scorer/", "training_scores", "drift_reference/"))}
    expected, actual = trained("kdd.model.h5"), trained("again.h5")
    found = [] if _bytes(actual) == _bytes(expected) else _training_differences(expected, actual)  # to the bit, else within rounding
    assert not found, "\n".join(found[:40])
    assert any(name.startswith("weights/") for name in trained("again.h5"))
    unchanged = ("scorer/reference", "scorer/reference_kept")  # drawn as they were
    assert {k: _datasets("again.h5")[k] for k in unchanged} == {k: _datasets("kdd.model.h5")[k] for k in unchanged}
    with h5py.File("again.h5", "r") as f:  # the k-NN part's rows: those the reference's tails leave in (trimmed since)
        reference, neighbours = f["scorer/reference"][()], f["scorer/knn/reference"][()]
    assert {tuple(row) for row in neighbours} <= {tuple(row) for row in reference}


# ----------------------------------------------------------------------------- exact, or within rounding
# The scores are float32 sums of standardised parts, so rounding moves them by an absolute amount:
# on an AMD EPYC against the fixtures, at most 4.8e-7 on scores from -5.3 to 3.3 (14 of the 100
# rows), and not at all on the scores near 132 (a float32 step there is 1.5e-5). atol is four times
# that; rtol allows 9 float32 steps at 132 (1.3e-4), far below the 1e-3 of a real change. The
# explanations of the cosine model moved by at most 6e-7 relative, the threshold not at all. (Of
# kdd.model.h5's 100 rows, 33 score within this of its threshold, 132.31657: their flags are
# checked where the version-1 scores are fed, in (a).)
ROUNDING = dict(rtol=1e-6, atol=2e-6)
# Summary fields that the order of tied scores decides: checked on the version-1 scores, by (a).
# AUROC too: a positive and a negative row tied and then not move it by 1 / (2 * 18 * 82) = 3.4e-4.
# The threshold, a quantile of the scores, moves with them only within rounding: checked in (b).
TIE_SENSITIVE = {"anomalies_flagged", "auroc", "auprc", "precision", "recall", "f1",
                 "drift_max_psi", "drift_columns", "drift_score_psi"}
# Training for 4 epochs on an AMD EPYC moved each weight, optimiser and loss array by at most
# 1.8e-7 of its largest value (encoder.0.weight; most arrays under 1e-7). A learning rate 0.1 %
# higher moves every one of them by 5e-5 of its largest value or more (the weights 5e-5 to 1.8e-4;
# 1 % higher: 4e-3 and more, and other selections). 1e-5: 50 times the rounding, and 5 times below
# the smallest real change measured.
TRAINING = 1e-5
RANKED = {"rows": "score", "columns": "contribution", "why": "contribution"}  # lists ranked by a number, largest first
IDENTITY = ("row", "id", "column")  # what an entry of such a list is of


def _differences(expected, actual, where: str = "", scale: float = 0.0) -> list[str]:
    """Where ``actual`` differs from ``expected`` beyond rounding: numbers within ``ROUNDING``,
    absolute tolerance ``scale`` times rtol more inside a row (its score: a contribution or a
    share is a difference of two scores); every other value exactly; lists in ``RANKED`` by
    ``_ranked_differences``."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if isinstance(expected.get("score"), float):
            scale = abs(expected["score"])
        found = [f"{where}/{key}: {'missing' if key in expected else 'unexpected'}" for key in sorted(expected.keys() ^ actual.keys())]
        return found + [difference for key in sorted(expected.keys() & actual.keys())
                        for difference in _differences(expected[key], actual[key], f"{where}/{key}", scale)]
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        key = RANKED.get(where.rpartition("/")[2])
        if key and expected and all(isinstance(entry, dict) and key in entry for entry in expected + actual):
            return _ranked_differences(expected, actual, key, where, scale)
        return [difference for i, (e, a) in enumerate(zip(expected, actual)) for difference in _differences(e, a, f"{where}[{i}]", scale)]
    numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (expected, actual))
    if numbers and float in (type(expected), type(actual)):
        close = math.isclose(expected, actual, rel_tol=ROUNDING["rtol"], abs_tol=ROUNDING["atol"] + ROUNDING["rtol"] * scale)
        return [] if close else [f"{where}: {expected!r} != {actual!r}"]
    return [] if expected == actual else [f"{where}: {str(expected)[:120]} != {str(actual)[:120]}"]


def _ranked_differences(expected: list, actual: list, key: str, where: str, scale: float) -> list[str]:
    """A list ranked by ``key``, largest first (explain's rows by score, their columns by
    contribution): the i-th ``key`` (and rank) is the expected i-th one within rounding, so the
    ranking holds; each entry is compared with the expected entry of the same row or column, so
    entries tied within rounding may swap places. An entry the expected list lacks may only have
    taken the place of one it ties with at the cut: both keys tie with the last expected one
    (nothing was recorded to compare the newcomer's other fields with)."""
    identity = next(name for name in IDENTITY if name in expected[0])
    by_identity = {entry[identity]: entry for entry in expected}
    found, cut = [], expected[-1][key]
    for i, (e, a) in enumerate(zip(expected, actual)):
        found += _differences(e[key], a[key], f"{where}[{i}]/{key}", scale) + _differences(e.get("rank"), a.get("rank"), f"{where}[{i}]/rank")
        if a[identity] in by_identity:
            found += _differences({**by_identity[a[identity]], "rank": None}, {**a, "rank": None},
                                  f"{where}[{identity}={a[identity]}]", scale)
    shown = {entry[identity] for entry in actual}
    for entry in [a for a in actual if a[identity] not in by_identity] + [e for e in expected if e[identity] not in shown]:
        found += _differences(cut, entry[key], f"{where}[{identity}={entry[identity]}], in one list only: {key} vs the cut's", scale)
    return found


def _dataset_differences(expected_path, actual_path, where: str, fed: bool = False) -> list[str]:
    """A scores file's datasets against the version-1 file's beyond rounding: the same names,
    dtypes and shapes; ``score`` within ``ROUNDING``; ``is_anomaly`` the same except for rows scored
    within rounding of either file's threshold; ``drift_psi`` within rounding unless some row is
    scored within rounding of the model's drift cut (which side of it a row falls on changes the
    counts); every other dataset exactly. ``fed``: the file's scores are the version-1 ones
    themselves (``_score_as_stored``), so no row is excused: every row is on the same side of the
    threshold and of the cut, and only the logarithms of the drift may round otherwise."""
    expected, actual = _arrays(expected_path), _arrays(actual_path)
    found = _layout_differences(expected, actual, where)
    if found:
        return found

    def near(cut) -> np.ndarray:
        if fed:
            return np.zeros(len(expected["score"]), dtype=bool)
        return np.isclose(expected["score"], cut, **ROUNDING) | np.isclose(actual["score"], cut, **ROUNDING)

    thresholds, cut = [_attrs(path)["threshold"] for path in (expected_path, actual_path)], _attrs(expected_path)["cut"]
    for name in expected:
        e, a = expected[name], actual[name]
        if name == "score" or (name == "drift_psi" and not near(cut).any()):
            bad = ~np.isclose(a, e, **ROUNDING)
        elif name == "is_anomaly":
            bad = (a != e) & ~near(thresholds[0]) & ~near(thresholds[1])
        elif name == "drift_psi":
            continue  # a row on the cut: checked where the version-1 scores are fed (the test's (a))
        else:
            bad = a != e
        if bad.any():
            rows = np.flatnonzero(bad)
            found.append(f"{where} {name}: {len(rows)} row(s) differ, first {rows[:5].tolist()}: "
                         f"{e[rows[:5]].tolist()} != {a[rows[:5]].tolist()}")
    return found


def _attrs(scores_path) -> dict:
    """A scores file's threshold, and the model's drift cut as it records it (None: no drift measured)."""
    with h5py.File(scores_path, "r") as f:
        drift = json.loads(f.attrs["drift"]) if "drift" in f.attrs else {}
        return {"threshold": float(f.attrs["threshold"]), "cut": drift.get("cut")}


def _score_as_stored(monkeypatch, scores_path) -> None:
    """``score`` from now on takes the scores of ``scores_path``, row by row in the order it asks,
    in place of those of the network it restores: everything after the network runs as it does."""
    from deepuad.stages import score as score_stage

    with h5py.File(scores_path, "r") as f:
        stored = f["score"][()]
    restore = score_stage.load_model

    def load_model(*args, **kwargs):
        detector, meta = restore(*args, **kwargs)
        done = 0

        def decision_function(X, **_):
            nonlocal done
            done += len(X)
            return stored[done - len(X) : done].copy()

        detector.decision_function = decision_function
        return detector, meta

    monkeypatch.setattr(score_stage, "load_model", load_model)


def _training_differences(expected: dict, actual: dict) -> list[str]:
    """A trained model's datasets against the version-1 ones beyond rounding: the same names,
    dtypes and shapes; float arrays within ``TRAINING`` of their largest value; every other
    (selections, the random state) exactly."""
    found = _layout_differences(expected, actual, "trained")
    if found:
        return found
    for name, e in expected.items():
        a = actual[name]
        if e.dtype.kind == "f":
            moved, largest = float(np.max(np.abs(a - e), initial=0)), float(np.max(np.abs(e), initial=0))
            if not moved <= TRAINING * largest:
                found.append(f"trained {name}: moved by {moved:.3g}, {moved / largest if largest else math.inf:.3g} of its largest value")
        elif not np.array_equal(a, e):
            found.append(f"trained {name}: {int(np.count_nonzero(a != e))} value(s) differ")
    return found


def _layout_differences(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], where: str) -> list[str]:
    """Datasets missing, unexpected, or of another dtype or shape."""
    found = [f"{where} {name}: {'missing' if name in expected else 'unexpected'}" for name in sorted(expected.keys() ^ actual.keys())]
    return found + [f"{where} {name}: {expected[name].dtype}{expected[name].shape} != {actual[name].dtype}{actual[name].shape}"
                    for name in sorted(expected.keys() & actual.keys())
                    if (expected[name].dtype, expected[name].shape) != (actual[name].dtype, actual[name].shape)]


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
