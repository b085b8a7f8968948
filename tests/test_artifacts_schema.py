"""Artifacts that break their kind's declared schema (deepuad/artifacts/schema.py) are refused
with exit 3 and one line naming the file and the field, before any value is used.

The crafted cases of the second hostile-file probe (issue 33: forest arrays, unbounded trees,
crafted encodings, attribute contents, record counts) are rebuilt here by code, and a
Hypothesis fuzzer breaks every declared field of every kind in every way its declaration
allows: wrong dtype, wrong rank, out of range, missing.
"""

from __future__ import annotations

import json
import shutil
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from helpers import TRAIN, clean_error, cli, replace_dataset, rewrite, run_cli
from deepuad import artifacts as art
from deepuad.artifacts import schema
from deepuad.errors import InputError


def crafted(built, kind: str, folder: Path, edit) -> Path:
    """A copy of the built ``kind`` artifact with ``edit(h5py.File)`` applied, re-fingerprinted."""
    path = folder / f"crafted.{kind}.h5"
    shutil.copy(built[kind], path)
    return rewrite(path, edit)


def refused(capsys, args, field: str, bad: Path, seconds: float = 10.0) -> str:
    """Exit 3, one clean line naming the crafted file and ``field``, in under ``seconds``."""
    started = time.perf_counter()
    code, out, err = run_cli(capsys, *args)
    elapsed = time.perf_counter() - started
    assert code == 3, (args, code, err)
    assert clean_error(err), err
    assert str(bad) in err and field in err, err
    assert elapsed < seconds, f"{args[0]} took {elapsed:.1f} s"
    return err


def _commands(built, model: Path, folder: Path) -> list[list]:
    """score, explain and top --explain of a crafted model."""
    return [["score", model, built["features"], "-o", folder / "out.scores.h5"],
            ["explain", model, built["features"], "--top", "2"],
            ["top", built["scores"], "--explain", "2", "--model", model, "--force", "--format", "csv"]]


# =========================================================================== forest arrays
@pytest.fixture(scope="module")
def forested(built, tmp_path_factory):
    """``built`` with its model trained with ``--score distance+forest``: a model that holds a forest
    (the default score holds none)."""
    model = tmp_path_factory.mktemp("forest") / "model.h5"
    code, _, err = cli("train", built["features"], built["clusters"], "-o", model, *TRAIN, "--score", "distance+forest")
    assert code == 0, err
    return {**built, "model": model}


def _forest_edit(name, make):
    def edit(f):
        key = f"scorer/forest/{name}"
        replace_dataset(f, key, make(f[key][()]))
    return edit


@pytest.mark.parametrize("name,make", [
    ("roots", lambda v: v[None, :]),  # 2-D
    ("roots", lambda v: v.astype(np.float64)),
    ("left", lambda v: v.astype(np.float64)),
    ("feature", lambda v: v.astype(np.float32)),
    ("left", lambda v: np.array([str(x).encode() for x in v])),  # byte strings
    ("max_samples", lambda v: v[0]),  # 0-d
], ids=["roots-2d", "roots-float", "left-float", "feature-float", "left-bytes", "max_samples-0d"])
def test_forest_arrays_of_the_wrong_dtype_or_rank_are_exit_3(tmp_path, capsys, forested, name, make):
    bad = crafted(forested, "model", tmp_path, _forest_edit(name, make))
    for args in _commands(forested, bad, tmp_path):
        refused(capsys, args, f"scorer/forest/{name}", bad)


def _replace_forest(f, left, right, roots, max_samples=None, **storage):
    n = len(left)
    arrays = {"left": left, "right": right, "feature": np.zeros(n, np.int64), "threshold": np.zeros(n),
              "n_samples": np.ones(n, np.int64), "roots": roots}
    if max_samples is not None:
        arrays["max_samples"] = np.array([max_samples], np.int64)
    for name, values in arrays.items():
        replace_dataset(f, f"scorer/forest/{name}", np.asarray(values), **storage)


def _chain(depth: int):
    """One tree: inner node 2k sends left to the next inner node and right to a leaf, ``depth`` times."""
    n = 2 * depth + 1
    left, right = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    left[: 2 * depth : 2], right[: 2 * depth : 2] = np.arange(2, n, 2), np.arange(1, n, 2)
    return left, right


def test_a_tree_deeper_than_its_samples_allow_is_refused(tmp_path, capsys, forested):
    with h5py.File(forested["model"]) as f:
        max_samples = int(f["scorer/forest/max_samples"][0])
    limit = int(np.ceil(np.log2(max_samples)))
    # deep enough to break the bound, within the node count: only the depth check can catch it
    depth = limit + 2
    assert 2 * depth + 1 <= 2 * max_samples - 1
    left, right = _chain(depth)
    bad = crafted(forested, "model", tmp_path, lambda f: _replace_forest(f, left, right, np.array([0])))
    for args in _commands(forested, bad, tmp_path):
        refused(capsys, args, "deeper than", bad)
    # the bound is the one fit_forest and scikit-learn grow to: a chain exactly that deep is accepted
    left, right = _chain(limit)
    good = crafted(forested, "model", tmp_path, lambda f: _replace_forest(f, left, right, np.array([0])))
    code, _, err = run_cli(capsys, "score", good, forested["features"], "-o", tmp_path / "good.scores.h5", "--force")
    assert code == 0, err


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 300])
def test_every_forest_fit_forest_grows_meets_the_bounds(rows):
    """The bounds are the ones our grower (and scikit-learn's) reaches, not looser: some tree of a
    forest grown on many distinct rows is exactly ceil(log2(max_samples)) deep."""
    from deepuad.estimators.scoring import _walk_tables, check_forest, fit_forest, forest_depth_limit

    X = np.random.default_rng(rows).normal(size=(rows, 4)).astype(np.float32)
    forest = fit_forest(X, random_state=0)
    check_forest(forest, 4)
    depth = _walk_tables(forest)[-1]
    assert depth <= forest_depth_limit(forest["max_samples"][0])
    if rows == 300:
        assert depth == forest_depth_limit(forest["max_samples"][0])


def test_a_forest_with_more_nodes_than_its_trees_can_hold_is_refused(tmp_path, capsys, forested):
    with h5py.File(forested["model"]) as f:
        max_samples = int(f["scorer/forest/max_samples"][0])
    n = 2 * max_samples  # one root, the other nodes unreachable leaves: shallow, but more than one tree holds
    bad = crafted(forested, "model", tmp_path, lambda f: _replace_forest(f, np.full(n, -1), np.full(n, -1), np.array([0])))
    refused(capsys, _commands(forested, bad, tmp_path)[0], "nodes", bad)


def test_the_million_node_chain_of_the_probe_is_refused_fast(tmp_path, capsys, forested):
    """A 1M-node chain with 100 roots pointing into it (1.3 MB; score ran past 120 s)."""
    left, right = _chain(500_000)

    def edit(f):  # compressed, as the probe's file was
        _replace_forest(f, left, right, np.arange(100), max_samples=256, compression="gzip", shuffle=True)

    bad = crafted(forested, "model", tmp_path, edit)
    assert bad.stat().st_size < 10 << 20
    refused(capsys, _commands(forested, bad, tmp_path)[0], "scorer/forest", bad)



def test_tails_columns_out_of_order_are_exit_3(tmp_path, capsys, built):
    """The tails part reads its columns as sorted (a binary search): a crafted order is refused by
    every command that scores with the model (``score`` of the training rows reads their stored scores)."""
    def edit(f):
        replace_dataset(f, "scorer/tails/sorted", f["scorer/tails/sorted"][()][::-1].copy())

    bad = crafted(built, "model", tmp_path, edit)
    shard = ["score", bad, built["features"], "--shard", "0/2", "-o", tmp_path / "shard.h5"]
    for args in [shard, *_commands(built, bad, tmp_path)[1:]]:
        refused(capsys, args, "tails", bad)

# =========================================================================== encodings
def _encoding_edit(change):
    def edit(f):
        encoding = json.loads(f["encoding"][()])
        replace_dataset(f, "encoding", json.dumps(change(encoding)), dtype=h5py.string_dtype())
    return edit


def _set(key, make):
    def change(encoding):
        encoding[key] = make(encoding[key])
        return encoding
    return change


@pytest.mark.parametrize("change,field", [
    (_set("scale", lambda v: [0.0] * len(v)), "encoding.scale[0]"),
    (_set("offset", lambda v: [1e308] * len(v)), "encoding.offset[0]"),
    (_set("offset", lambda v: [v]), "encoding.offset"),  # 2-D
    (_set("scale", lambda v: [[s] for s in v]), "encoding.scale[0]"),  # 2-D, the right length
    (lambda encoding: [encoding], "encoding"),  # a JSON array
], ids=["scale-0", "offset-1e308", "offset-2d", "scale-2d", "array"])
def test_a_crafted_encoding_is_refused_when_read(tmp_path, capsys, built, change, field):
    bad = crafted(built, "features", tmp_path, _encoding_edit(change))
    for fmt in ("csv", "jsonl", "parquet"):
        refused(capsys, ["top", built["scores"], "--features", bad, "--force", "--format", fmt, "-o", tmp_path / f"t.{fmt}"],
                field, bad)
    refused(capsys, ["explain", built["model"], bad, "--top", "2", "--force"], field, bad)
    refused(capsys, ["extract", built["table"], "--like", bad, "--label-column", "label", "--anomaly-values", "bad",
                     "-o", tmp_path / "new.features.h5"], field, bad)
    assert not list(tmp_path.glob("t.*")) and not (tmp_path / "new.features.h5").exists()


# =========================================================================== attribute contents
def _attr_json(name, change):
    def edit(f):
        f.attrs[name] = json.dumps(change(json.loads(f.attrs[name])))
    return edit


def _drop_key(key):
    def change(value):
        del value[key]
        return value
    return change


@pytest.mark.parametrize("kind,edit,field,command", [
    ("scores", _attr_json("inputs", lambda v: {**v, "features": [v["features"]["path"]]}), "inputs.features", "top"),
    ("model", _attr_json("iterations", lambda v: []), "iterations", "score"),
    ("model", _attr_json("params", lambda v: {**v, "p": "thirty"}), "params.p", "score"),
    ("model", _attr_json("state", _drop_key("score_parts")), "score_parts", "score"),
    ("model", _attr_json("state", lambda v: {**v, "score_parts": ["nope"]}), "state.score_parts[0]", "score"),
    ("model", _attr_json("params", lambda v: {**v, "score": "nope"}), "params.score", "score"),
    ("model", lambda f: f.attrs.__setitem__("contamination_estimate", np.nan), "contamination_estimate", "score"),
    ("model", lambda f: f.attrs.__setitem__("contamination_estimate", 0.9), "contamination_estimate", "score"),
    ("model", _attr_json("architecture", lambda v: {**v, "activation": "sigmoid"}), "architecture.activation", "score"),
    ("clusters", lambda f: f.attrs.__setitem__("n_rows", -5), "n_rows", "inspect"),
], ids=["inputs-list", "iterations-empty", "p-text", "no-score-parts", "unknown-part", "unknown-score", "estimate-nan",
        "estimate-0.9", "activation", "n_rows-negative"])
def test_attribute_contents_are_checked(tmp_path, capsys, built, kind, edit, field, command):
    bad = crafted(built, kind, tmp_path, edit)
    args = {"top": ["top", bad, "--format", "csv"], "score": ["score", bad, built["features"], "-o", tmp_path / "o.scores.h5"],
            "inspect": ["inspect", bad]}[command]
    refused(capsys, args, field, bad)
    refused(capsys, ["inspect", bad], field, bad)
    assert not (tmp_path / "o.scores.h5").exists()


def test_evaluate_with_a_model_that_is_no_model_draws_nothing(tmp_path, capsys, built):
    refused(capsys, ["evaluate", built["scores"], "--model", built["features"], "--plots", tmp_path / "plots"],
            "expected model", built["features"])
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize("drift,field", [
    ({"measured": True, "max_psi": "x", "score_psi": 0.1, "columns": []}, "drift.max_psi"),
    ({"measured": True, "max_psi": 0.2, "score_psi": 0.1, "columns": [{"column": "a", "feature": "a"}]}, "drift.columns[0].psi"),
    ({"measured": False}, "drift.reason"),
    ({"measured": "yes", "reason": "r"}, "drift.measured"),
    ([], "drift"),
])
def test_a_scores_drift_summary_is_held_to_its_declaration(tmp_path, capsys, built, drift, field):
    bad = crafted(built, "scores", tmp_path, lambda f: f.attrs.__setitem__("drift", json.dumps(drift)))
    refused(capsys, ["inspect", bad], field, bad)


def test_the_drift_summaries_score_writes_meet_their_declaration(built):
    from deepuad.artifacts.scores import DRIFT

    for drift in ({"measured": True, "max_psi": 0.3, "score_psi": 0.0, "columns": [{"column": "a", "feature": "a=x", "psi": 0.3}]},
                  {"measured": False, "reason": "no drift reference"}):
        schema.check_value(DRIFT, drift, "drift", lambda _: None)


def test_selected_indices_beyond_the_rows_are_refused(tmp_path, capsys, built):
    bad = crafted(built, "clusters", tmp_path, lambda f: replace_dataset(f, "selected", np.array([0, 1, 10**6])))
    refused(capsys, ["train", built["features"], bad, "-o", tmp_path / "m.h5", "--epochs", "1"], "selected", bad)


# =========================================================================== record counts
def _iterations(count: int, distinct: bool):
    def edit(f):
        record = json.loads(f.attrs["iterations"])[0]
        records = [{**record, "iteration": i if distinct else 0} for i in range(count)]
        f.attrs.create("iterations", json.dumps(records))  # over 64 KiB: h5py stores it densely
    return edit


@pytest.mark.parametrize("distinct", [False, True])
def test_sixty_thousand_iteration_records_are_refused_fast(tmp_path, capsys, built, distinct):
    """The probe's 6.5 MB model: score ran past 120 s and inspect took 86 s."""
    bad = crafted(built, "model", tmp_path, _iterations(60_000, distinct))
    assert bad.stat().st_size < 10 << 20
    for args in (["score", bad, built["features"], "-o", tmp_path / "o.scores.h5"], ["inspect", bad]):
        refused(capsys, args, "iterations", bad, seconds=5)


def test_records_within_the_declared_epochs_are_bounded_too(tmp_path, capsys, built):
    """Declaring 10^7 epochs does not lift the bound: train takes at most LIMITS["reselections"]."""
    def edit(f):
        f.attrs["params"] = json.dumps({**json.loads(f.attrs["params"]), "epochs": 10**7, "r": 1})
        _iterations(1_500, True)(f)

    bad = crafted(built, "model", tmp_path, edit)
    refused(capsys, ["inspect", bad], "'iterations' has 1,500 entries, more than 1,002", bad, seconds=5)


def test_a_file_of_thousands_of_groups_is_refused_before_they_are_visited(tmp_path, capsys, built):
    def edit(f):
        for i in range(5_000):
            f.create_group(f"padding/{i}")

    bad = crafted(built, "model", tmp_path, edit)
    refused(capsys, ["score", bad, built["features"], "-o", tmp_path / "o.scores.h5"], "groups and datasets", bad, seconds=2)


def _zeros(f, name: str, mib: int) -> None:
    """A compressed dataset of ``mib`` MiB of zeros, every chunk stored (a few hundred bytes each)."""
    chunk = 1 << 20  # values: 8 MiB, deflated once and stored as every chunk
    dataset = f.create_dataset(name, shape=(mib << 17,), dtype=np.float64, chunks=(chunk,), compression="gzip")
    deflated = zlib.compress(bytes(8 * chunk))
    for start in range(0, dataset.shape[0], chunk):
        dataset.id.write_direct_chunk((start,), deflated)


def test_a_dataset_that_inflates_far_beyond_what_it_stores_is_refused(tmp_path, capsys, built):
    """deepuad never compresses scores (tests/test_cli_bounds.py holds the datasets it compresses to
    their limits)."""
    def edit(f):
        del f["score"]
        _zeros(f, "score", 512)

    bad = crafted(built, "scores", tmp_path, edit)
    refused(capsys, ["top", bad, "--format", "csv"], "compressed, which deepuad never does", bad)


def test_every_record_of_a_real_training_is_accepted(tmp_path, capsys, built):
    with art.open_artifact(built["model"], "model") as f:
        assert len(art.attr_json(f, "iterations")) >= 2  # re-selections happened: the bound was met, not vacuous
    code, _, err = run_cli(capsys, "inspect", built["model"])
    assert code == 0, err


# =========================================================================== the fuzzer
# every declared field of every kind, as (kind, "dataset" | "attr", name); patterns stand for the
# names of the built files that match them
def _fields(built) -> list[tuple[str, str, str]]:
    fields = []
    for kind, source in (("features", "features"), ("clusters", "clusters"), ("model", "model"), ("scores", "scores"),
                         ("scores_shard", "shard0")):
        spec = art.KINDS[kind]
        with h5py.File(built[source]) as f:
            names = [name for name, _ in art._datasets(f)]
            for pattern in spec.datasets:
                fields += [(source, "dataset", name) for name in names if schema.declared({pattern: 1}, name)][:1]
            fields += [(source, "attr", name) for name in {**art.envelope.ROOT_ATTRS, **spec.attrs} if name in f.attrs]
    return fields


MUTATIONS = ("dtype", "rank", "range", "missing", "compressed")


def _declaration(source_kind: str, where: str, name: str):
    kind = {"shard0": "scores_shard"}.get(source_kind, source_kind)
    spec = art.KINDS[kind]
    if where == "dataset":
        return schema.declared(spec.datasets, name)
    return {**art.envelope.ROOT_ATTRS, **spec.attrs}[name]


def _out_of_range(number: schema.Number, integer_dtype: bool):
    """A value its declaration refuses, or None where it declares no range."""
    if number.low is not None and not isinstance(number.low, str):
        return number.low - 1 if not number.low_open else number.low
    if number.high is not None and not isinstance(number.high, str):
        return number.high + 1
    if isinstance(number.below, str) or isinstance(number.high, str):
        return 10**9
    if not number.nan and not integer_dtype:
        return np.nan
    return None


def _break_dataset(f, name: str, declared: schema.Array, mutation: str) -> bool:
    """Break dataset ``name`` as ``mutation`` says; False where its declaration allows anything of that sort."""
    data = f[name][()]
    if mutation == "missing":
        if not declared.required:
            return False
        del f[name]
    elif mutation == "dtype":
        wrong = np.array([b"x"] * max(1, np.size(data))) if "S" not in declared.kinds else np.ones(max(1, np.size(data)))
        replace_dataset(f, name, wrong.reshape(np.shape(data)) if np.size(data) else wrong)
    elif mutation == "compressed":  # the same values, deflated: only X and selections may be (test_cli_bounds.py)
        if declared.inflation is not None or not np.ndim(data) or data.dtype.kind == "O":
            return False
        del f[name]
        dataset = f.create_dataset(name, data=data, compression="gzip", compression_opts=9, shuffle=True)
        return dataset.id.get_storage_size() < data.nbytes  # else it declares no more than it stores
    elif mutation == "rank":
        ranks = declared.ndim if isinstance(declared.ndim, tuple) else (declared.ndim,)
        wrong = np.asarray(data)[None, ...] if np.ndim(data) < 3 else np.asarray(data)[0]
        if wrong.ndim in ranks:
            wrong = wrong[None, ...]
        if wrong.ndim in ranks:
            return False
        replace_dataset(f, name, wrong)
    else:
        if declared.values is None or not np.size(data) or data.dtype.kind not in "iuf":
            return False
        value = _out_of_range(declared.values, data.dtype.kind in "iu")
        if value is None:
            return False
        broken = np.array(data, dtype=np.float64) if np.isnan(value) else np.array(data)
        if broken.dtype.kind in "iu" and not np.can_cast(np.min_scalar_type(value), broken.dtype):
            broken = broken.astype(np.int64)  # -1 or 2 in a uint8 mask: the same kind, wide enough to hold it
        broken.ravel()[0] = value
        replace_dataset(f, name, broken)
    return True


def _break_attr(f, name: str, declared: schema.Attr, mutation: str) -> bool:
    spec = declared.spec
    if mutation == "compressed":  # attributes are stored as they are
        return False
    if mutation == "missing":
        if not declared.required:
            return False
        del f.attrs[name]
    elif mutation == "dtype":
        f.attrs[name] = np.float64(1.5) if isinstance(spec, (schema.Text, schema.Json)) else "text"
    elif mutation == "rank":
        if isinstance(spec, schema.Json):
            f.attrs[name] = json.dumps([json.loads(f.attrs[name])])  # a list where an object belongs, or nested one deeper
        elif isinstance(f.attrs[name], str):
            f.attrs.create(name, [f.attrs[name]] * 2, dtype=h5py.string_dtype())
        else:
            f.attrs[name] = np.array([f.attrs[name], f.attrs[name]])
    else:
        if not isinstance(spec, schema.Number):
            return False
        value = _out_of_range(spec, False)
        if value is None:
            return False
        f.attrs[name] = value
    return True


def _read_all(path: Path) -> None:
    """What a reader does: open the file and read every declared dataset (JSON ones parsed)."""
    with art.open_artifact(path) as f:
        kind = art.KINDS[str(f.attrs["deepuad_kind"])]
        for name, dataset in art._datasets(f):
            declared = schema.declared(kind.datasets, name)
            if declared is not None:
                art.read_json(f, name) if declared.json is not None else art.read_array(f, name)


@pytest.fixture(scope="module")
def fields(built):
    return _fields(built)


def test_the_fuzzer_covers_every_kind(fields):
    assert {kind for kind, _, _ in fields} == {"features", "clusters", "model", "scores", "shard0"}
    assert len(fields) > 40


@pytest.mark.slow
@settings(max_examples=120, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_declared_field_broken_is_refused_naming_it(built, fields, tmp_path_factory, data):
    source, where, name = data.draw(st.sampled_from(fields), label="field")
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    declared = _declaration(source, where, name)
    path = tmp_path_factory.mktemp("fuzz") / "bad.h5"
    shutil.copy(built[source], path)
    with h5py.File(path, "a") as f:
        broken = _break_dataset(f, name, declared, mutation) if where == "dataset" else _break_attr(f, name, declared, mutation)
        if name != "fingerprint":
            f.attrs["fingerprint"] = art.content_fingerprint(f)
    assume(broken)  # else the declaration allows every value of that sort: nothing to refuse
    with pytest.raises(InputError) as error:
        _read_all(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert name in message or name.split("/")[-1] in message, (mutation, message)
