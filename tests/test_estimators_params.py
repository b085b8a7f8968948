"""The parameter spec (deepuad/estimators/params.py) is the one declaration of every parameter:
the command line's options, DeepUAD's signature and constraints, and the parameters artifacts
record all agree with it, no default is written out anywhere else, and every value it refuses is
refused with the parameter's name (its option's at the command line, exit 2)."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import h5py
import numpy as np
import pytest


from helpers import cli, make_table, run_cli
from deepuad.estimators.constraints import ParamError, allows, check
from deepuad.estimators.params import (
    DEFAULTS, METHOD_OPTIONS, METHOD_SPEC, PARAMS, RESUMABLE, SPEC, from_record, options_of, recorded,
)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = sorted((ROOT / "tests" / "golden").glob("reference*.json"))

# commands with parameters of their own that share an option's name with the spec's: the baselines'
# (other defaults: a baseline is not DeepUAD) and merge-scores' --contamination (the shards' by default)
OWN_PARAMETERS = {"baseline": {"method", "contamination", "epochs", "batch_size", "lr", "layers", "activation"},
                  "merge-scores": {"contamination"}}


def commands() -> dict:
    import typer

    from deepuad.cli import app

    return typer.main.get_command(app).commands


# --------------------------------------------------------------------------- the command line
def test_every_option_of_the_spec_is_the_spec_s():
    """Each command offers exactly the spec's options for it, each with the spec's flags, default
    and help, under the parameter's name."""
    app = commands()
    offered = {command for param in PARAMS + METHOD_OPTIONS for command in param.commands}
    assert offered <= set(app), offered - set(app)
    for name, command in app.items():
        spec = {param.name: param for param in options_of(name)}
        assert len(spec) == len(options_of(name)), f"{name}: two options of one name"
        options = {option.name: option for option in command.params}
        for param in spec.values():
            option = options.get(param.name)
            assert option is not None, f"{name} lacks {param.flag} ({param.name})"
            assert set(option.opts) == set(param.option_names), (name, param.name, option.opts)
            assert option.default == param.cli_default, (name, param.name, option.default, param.cli_default)
            assert option.help == param.help, (name, param.name)
        flags = {flag: param for param in PARAMS + METHOD_OPTIONS if param.commands for flag in param.option_names}
        for option in command.params:
            for flag in set(option.opts) & set(flags):
                if option.name not in spec:  # an option of the spec's name that the spec does not give this command
                    assert option.name in OWN_PARAMETERS.get(name, ()), f"{name} {flag}: not the spec's option"


def test_the_spec_s_help_and_defaults_are_what_help_shows(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    out = " ".join(out.split())
    assert code == 0 and "--reselect-sample" in out and f"[default: {SPEC['reselect_fit_sample'].cli_default}]" in out
    assert " ".join(SPEC["tol"].help.split()) in out


# --------------------------------------------------------------------------- the estimator
def test_deepuad_s_signature_and_constraints_are_the_spec_s():
    from deepuad.estimators.detector import DeepUAD

    signature = inspect.signature(DeepUAD).parameters
    estimator = [param for param in PARAMS if param.estimator]
    assert list(signature) == [param.name for param in estimator]
    assert {name: p.default for name, p in signature.items()} == DEFAULTS == {p.name: p.default for p in estimator}
    assert DeepUAD._parameter_checks == {param.name: param.constraints for param in estimator}


@pytest.mark.parametrize("param", PARAMS + METHOD_OPTIONS, ids=lambda p: p.name)
def test_every_default_meets_its_constraints(param):
    if param.constraints:
        check(param.name, param.default, param.constraints)
    if param.commands:  # and the option's default is that default
        assert param.from_option(param.cli_default) == param.default


# the holes the spec closes, and values any constraint of the spec refuses, each at DeepUAD.fit
REFUSED = [("r", 2.5), ("r", 0), ("epochs", 1.5), ("init_clusters", 2.5), ("reselect_clusters", 3.0), ("seed", "3"),
           ("seed", -1), ("seed", 2**32), ("seed", True), ("p", 100), ("p0", 0), ("lr", float("nan")), ("tol", 1.0),
           ("batch_size", "big"), ("layers", (4, 0)), ("layers", ()), ("reselect_fit_sample", 1), ("score", "nope"),
           ("init_method", "nope"), ("trim_cutoff", None), ("compile", "yes"), ("contamination", 0.6)]


@pytest.mark.parametrize("name,value", REFUSED, ids=[f"{n}={v!r}" for n, v in REFUSED])
def test_deepuad_refuses_in_fit_what_the_spec_refuses(name, value):
    from deepuad.estimators.detector import DeepUAD

    detector = DeepUAD(**{name: value})  # __init__ only stores
    assert getattr(detector, name) is value
    with pytest.raises(ParamError, match=rf"^{name} must be .*, got {value!r}$".replace("(", r"\(").replace(")", r"\)")):
        detector.fit(np.random.default_rng(0).normal(size=(30, 3)))


def test_the_baselines_take_their_seed_as_the_spec_checks_it():
    from deepuad.estimators.baselines import IsolationForestDetector

    with pytest.raises(ValueError, match="random_state must be None or an integer >= 0, got '3'"):
        IsolationForestDetector(random_state="3").fit(np.zeros((5, 2)))


def test_a_refused_value_names_the_option():
    from deepuad.cli.app import message

    with pytest.raises(ParamError) as refused:
        check("reselect_fit_sample", 1, SPEC["reselect_fit_sample"].constraints)
    assert str(refused.value) == "reselect_fit_sample must be None or an integer >= 2, got 1"
    # the option's name, and 0, which stands for None there
    assert message(refused.value) == "--reselect-sample must be 0 or an integer >= 2, got 1"
    with pytest.raises(ParamError) as refused:
        check("n_anchors", 0, METHOD_SPEC["n_anchors"].constraints)
    assert message(refused.value) == "--anchors must be an integer >= 1, got 0"


# --------------------------------------------------------------------------- the command line's refusals
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small table's features, clusters and model (read-only)."""
    folder = tmp_path_factory.mktemp("spec")
    table = make_table(folder / "table.csv", n_normal=60, n_anomaly=6)
    paths = {kind: folder / f"{kind}.h5" for kind in ("features", "clusters", "model")}
    for step in (("extract", table, "-o", paths["features"]),
                 ("cluster", paths["features"], "--clusters", "3", "-o", paths["clusters"]),
                 ("train", paths["features"], paths["clusters"], "-o", paths["model"], "--epochs", "2", "--r", "1",
                  "--layers", "4,2", "--reselect-clusters", "3", "--threads", "1", "--device", "cpu")):
        code, _, err = cli(*step)
        assert code == 0, (step, err)
    return paths


@pytest.mark.parametrize("args,words", [
    (["train", "{features}", "{clusters}", "--r", "2.5"], "--r"),
    (["train", "{features}", "{clusters}", "--epochs", "3", "--r", "0"], "--r must be an integer >= 1, got 0"),
    (["cluster", "{features}", "--clusters", "2.5"], "--clusters"),
    (["cluster", "{features}", "--clusters", "0"], "--clusters must be an integer >= 1, got 0"),
    (["cluster", "{features}", "--seed", "3x"], "--seed"),
    (["cluster", "{features}", "--method", "distribution", "--neighbors", "0"], "--neighbors must be an integer >= 1, got 0"),
    (["cluster", "{features}", "--method", "distribution", "--thres", "-1"], "--thres must be 'auto' or a positive number"),
    (["cluster", "{features}", "--method", "distribution", "--max-dist", "5"], "--max-dist must be a number in (0, 4]"),
    (["train", "{features}", "{clusters}", "--score", "nope"], "--score must be one of"),
    (["train", "{features}", "{clusters}", "--layers", "4,x"], "--layers must be comma-separated integers"),
    (["extract", "{features}", "--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
])
def test_the_command_line_refuses_with_the_option_s_name(built, tmp_path, capsys, args, words):
    code, _, err = run_cli(capsys, *[built[a[1:-1]] if a.startswith("{") else a for a in args], "-o", tmp_path / "o.h5")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("deepuad: error: ") and words in err, err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the artifacts
def _params(path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["params"])


def test_artifacts_record_exactly_the_spec_s_recorded_parameters(built):
    assert set(_params(built["model"])) == {param.key for param in recorded("model")}
    assert set(_params(built["clusters"])) == {param.key for param in recorded("clusters")} | {"method_options"}
    assert set(RESUMABLE) <= {param.key for param in recorded("model")}
    # the values read back are the ones the model was trained with, under the parameters' names
    values = from_record("model", _params(built["model"]))
    assert values["layers"] == [4, 2] and values["r"] == 1 and values["seed"] == DEFAULTS["seed"]
    assert from_record("clusters", _params(built["clusters"]))["init_clusters"] == 3


@pytest.mark.parametrize("reference", GOLDEN, ids=lambda p: p.name)
def test_the_golden_files_record_the_spec_s_names(reference):
    """The files today's golden run wrote (and files written before this spec) record the names
    the spec reads, and read back into a DeepUAD."""
    from deepuad.estimators.detector import DeepUAD
    from deepuad.stages._common import detector_params

    files = json.loads(reference.read_text())["files"]
    models = [name for name, digest in files.items() if digest["/"]["attrs"]["deepuad_kind"] == "model"]
    clusters = [name for name, digest in files.items() if digest["/"]["attrs"]["deepuad_kind"] == "clusters"]
    assert models and clusters
    for name in models:
        params = files[name]["/"]["attrs"]["params"]
        assert set(params) == {param.key for param in recorded("model")}, name
        DeepUAD(**detector_params(params)).check_params()
    for name in clusters:
        params = files[name]["/"]["attrs"]["params"]
        assert set(params) - {"method_options"} == {param.key for param in recorded("clusters")}, name
        assert set(params["method_options"]) <= set(METHOD_SPEC), name


def test_a_model_made_before_a_parameter_was_recorded_reads_as_it_was_made():
    """The version-1 reader supplies what older models do not record (tests/test_artifacts_versions.py
    reads such files); from_record supplies nothing."""
    from deepuad.artifacts.model import _v1_params
    from deepuad.stages._common import detector_params

    assert detector_params(_v1_params({"epochs": 3, "r": 1})) == {"epochs": 3, "r": 1, "p0": 35.0, "score": "cosine",
                                                                  "n_neighbors": 5, "init_by": "variance", "reference_trim": None}
    assert detector_params({"epochs": 3, "r": 1}) == {"epochs": 3, "r": 1}


# --------------------------------------------------------------------------- one declaration
def _literal_defaults(path: Path, defaults: dict, root: Path = ROOT) -> list[str]:
    """Where ``path`` writes a parameter's default out: a function's default, a keyword argument,
    a dict entry or a ``get``/``setdefault`` fallback of a parameter's name with its default's value."""
    found = []

    def same(node, name):
        return isinstance(node, ast.Constant) and any(type(node.value) is type(d) and node.value == d
                                                      for d in defaults.get(name, ()))

    for node in ast.walk(ast.parse(path.read_text())):
        pairs = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            positional = node.args.posonlyargs + node.args.args
            pairs += zip((a.arg for a in positional[len(positional) - len(node.args.defaults):]), node.args.defaults)
            pairs += [(a.arg, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
        elif isinstance(node, ast.Call):
            pairs += [(k.arg, k.value) for k in node.keywords if k.arg]
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "setdefault") and len(node.args) == 2 \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                pairs.append((node.args[0].value, node.args[1]))
        elif isinstance(node, ast.Dict):
            pairs += [(k.value, v) for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        found += [f"{path.relative_to(root)}:{value.lineno}: {name}={value.value!r}" for name, value in pairs if same(value, name)]
    return found


# where a name of the spec takes the same value as a default of its own, not the spec's
NOT_THE_SPEC_S = {
    ("device", "cpu"),  # every function that runs torch takes a device; "cpu" is none of the method's choices
    ("normalize", "l2"),  # distribution_clustering_reference: the original release's default (a test oracle)
}


def test_no_default_is_written_out_beside_the_spec():
    defaults: dict = {}
    for param in PARAMS + METHOD_OPTIONS:
        if param.default is not None and (param.name, param.default) not in NOT_THE_SPEC_S:
            defaults.setdefault(param.name, []).append(param.default)
    found = [hit for path in sorted((ROOT / "deepuad").rglob("*.py")) if path.name != "params.py"
             for hit in _literal_defaults(path, defaults)]
    assert not found, "defaults written out beside params.PARAMS:\n" + "\n".join(found)


def test_the_default_check_sees_a_default_written_out(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f(p0=35.0, seed=1, compile=0):\n    g(tol=0.05)\n"
                      "    return {'score': 'distance+forest'}.get('r', 10)\n")
    defaults = {"p0": [35.0], "tol": [0.05], "score": ["distance+forest"], "r": [10], "seed": [0], "compile": [False]}
    found = [hit.split(": ", 1)[1] for hit in _literal_defaults(source, defaults, tmp_path)]
    assert sorted(found) == ["p0=35.0", "r=10", "score='distance+forest'", "tol=0.05"]  # seed=1 and compile=0 are not defaults


def test_allows_is_strict_about_kinds():
    from deepuad.estimators.constraints import Integral, Interval, Real

    assert not allows(Interval(Integral, 0), True) and not allows(Interval(Integral, 0), 2.0)
    assert allows(Interval(Integral, 0), np.int64(3)) and allows(Interval(Real, 0), np.float32(0.5))
    assert not allows(Interval(Real, 0), float("inf")) and not allows(Interval(Real, 0), "1")
