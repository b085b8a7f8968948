"""The command line's surface (issues 30 and 33): what every command does with its standard
output when nobody reads it, with an output that names one of its inputs, with a plots folder
that is interrupted, and at first contact (bare ``deepuad``, ``-h``, global options after the
command), plus the help texts' constraints and ``top`` without torch.

The commands are enumerated from the app itself, so a new command fails these tests until it is
given a case here. Tiny data (a 66-row table, a 4-2 autoencoder, 2 epochs); in-process runs,
except where a real file descriptor matters (a closed pipe, ``>&-``, /dev/full, imports).
"""

import errno
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import CHILD_ENV, ROOT, TRAIN, clean_error, cli, make_table, run_cli, snapshot, write_fake_scores


def commands() -> dict:
    """The app's commands, as click sees them: name -> click command."""
    import typer

    from deepuad.cli import app

    return typer.main.get_command(app).commands


@pytest.fixture(scope="module")
def base(built, tmp_path_factory):
    """The session's small pipeline and a run folder of its table (read-only for the tests)."""
    run = tmp_path_factory.mktemp("surface") / "run"
    code, _, err = cli("-q", "run", built["table"], "-o", run, "--label-column", "label", "--anomaly-values", "bad",
                       "--clusters", "3", *TRAIN)
    assert code == 0, err
    return dict(built, run=run)


def one_error(err: str) -> bool:
    """clean_error, warnings and train's progress lines (stderr is not a terminal) aside: one error
    line, no traceback."""
    return clean_error("\n".join(line for line in err.splitlines()
                                 if not line.startswith(("deepuad: warning:", "deepuad: progress:"))))


# --------------------------------------------------------------------------- standard output
# every command, with arguments under which it writes to stdout ({out}: a fresh output name)
STDOUT_CASES = {
    "extract": ["extract", "{table}", "-o", "{out}"],
    "cluster": ["cluster", "{features}", "--clusters", "3", "-o", "{out}"],
    "train": ["train", "{features}", "{clusters}", "-o", "{out}", *TRAIN],
    "score": ["score", "{model}", "{features}", "-o", "{out}"],
    "merge-scores": ["merge-scores", "{shard0}", "{shard1}", "-o", "{out}"],
    "baseline": ["baseline", "{features}", "-o", "{out}"],
    "evaluate": ["evaluate", "{scores}"],
    "run": ["run", "{table}", "-o", "{run}", "--label-column", "label", "--anomaly-values", "bad", "--clusters", "3", *TRAIN],
    "inspect": ["inspect", "{model}"],
    "top": ["top", "{scores}", "-n", "3"],
    "explain": ["explain", "{model}", "{features}", "--top", "2"],
    "report": ["report", "{scores}", "-o", "{out}"],
}


def fill(args, paths: dict, out: Path) -> list[str]:
    return [str(a).format(out=out, **paths) for a in args]


class _Refusing:
    """A standard output whose every write fails with ``error`` (no file descriptor)."""

    def __init__(self, error: OSError):
        self.error = error

    def write(self, text):
        raise self.error

    def flush(self):
        raise self.error

    def isatty(self):
        return False


STDOUT_STATES = {
    "closed (>&-)": lambda: None,  # what Python makes of a closed descriptor 1
    "broken pipe (| head -1)": lambda: _Refusing(BrokenPipeError(errno.EPIPE, "Broken pipe")),
    "full (> /dev/full)": lambda: _Refusing(OSError(errno.ENOSPC, "No space left on device")),
}


def test_every_command_has_a_stdout_case():
    assert set(STDOUT_CASES) == set(commands())


@pytest.mark.parametrize("state", STDOUT_STATES)
@pytest.mark.parametrize("command", STDOUT_CASES)
def test_a_stdout_nobody_can_read_is_exit_6_with_one_line(base, tmp_path, capsys, monkeypatch, command, state):
    from deepuad.cli import main

    monkeypatch.setattr(sys, "stdout", STDOUT_STATES[state]())
    with pytest.raises(SystemExit) as exit_info:
        main(fill(STDOUT_CASES[command], base, tmp_path / "out.h5"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 6, err
    assert one_error(err) and "standard output" in err, err


@pytest.fixture(scope="module")
def moved(base, tmp_path_factory):
    """Features like the base table's, with column a in other units (x1000): drift beyond any PSI."""
    folder = tmp_path_factory.mktemp("moved")
    table = make_table(folder / "moved.csv", n_normal=60, n_anomaly=6, seed=1)
    lines = table.read_text().splitlines()
    table.write_text("\n".join([lines[0]] + [f"{float(a) * 1000:.4f},{rest}" for a, rest in (l.split(",", 1) for l in lines[1:])]) + "\n")
    code, _, err = cli("-q", "extract", table, "--like", base["features"], "-o", folder / "moved.h5")
    assert code == 0, err
    return folder / "moved.h5"


@pytest.mark.parametrize("state", STDOUT_STATES)
def test_fail_on_drift_with_a_stdout_nobody_can_read_is_exit_6_after_the_scores(base, moved, tmp_path, capsys, monkeypatch, state):
    """The summary is printed before the drift check: a stdout that fails is exit 6, the scores written."""
    from deepuad.cli import main

    args = ["score", base["model"], moved, "-o", tmp_path / "s.h5", "--fail-on-drift", "0.25"]
    assert run_cli(capsys, "-q", *args)[0] == 9  # nothing printed: the drift decides
    (tmp_path / "s.h5").unlink()
    monkeypatch.setattr(sys, "stdout", STDOUT_STATES[state]())
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 6, err
    assert one_error(err) and "standard output" in err, err
    with h5py.File(tmp_path / "s.h5") as f:
        assert len(f["score"]) == 66


def _child(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "deepuad", *map(str, args)], stderr=subprocess.PIPE, text=True,
                          env=CHILD_ENV, timeout=120, **kwargs)


def test_top_under_a_real_closed_pipe_closed_descriptor_and_full_device(base):
    args = ["top", base["scores"], "-n", "40"]
    read, write = os.pipe()
    os.close(read)  # `| head -1` that has already gone
    child = _child(args, stdout=write)
    os.close(write)
    assert child.returncode == 6 and clean_error(child.stderr) and "broken pipe" in child.stderr, child.stderr
    child = _child(args, preexec_fn=lambda: os.close(1))  # `>&-`
    assert child.returncode == 6 and clean_error(child.stderr) and "closed" in child.stderr, child.stderr
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    for full_args in (args, ["--help"]):  # rows written by deepuad, help written by click
        with open("/dev/full", "w") as full:
            child = _child(full_args, stdout=full)
        assert child.returncode == 6 and clean_error(child.stderr) and "No space left" in child.stderr, child.stderr


def test_a_closed_descriptor_1_never_receives_an_output_file(base, tmp_path):
    """Under `>&-` the output file would get descriptor 1; /dev/null holds it instead."""
    out = tmp_path / "s.h5"
    child = _child(["-q", "score", base["model"], base["features"], "-o", out], preexec_fn=lambda: os.close(1))
    assert child.returncode == 0, child.stderr
    with h5py.File(out) as f:
        assert len(f["score"]) == 66


# --------------------------------------------------------------------------- -o never names an input
# every command that writes: (arguments, the output option, the inputs it reads: given, and recorded
# inside the artifacts it opens). The output option is set to each input in turn.
OUTPUT_CASES = {
    "extract": (["extract", "{table}"], "-o", ["table"]),
    "cluster": (["cluster", "{features}", "--clusters", "3"], "-o", ["features", "table"]),
    "train": (["train", "{features}", "{clusters}", *TRAIN], "-o", ["features", "clusters"]),
    "score": (["score", "{model}", "{features}"], "-o", ["model", "features", "clusters"]),
    "merge-scores": (["merge-scores", "{shard0}", "{shard1}"], "-o", ["shard0", "shard1", "model", "features"]),
    "baseline": (["baseline", "{features}", "--score-features", "{scores_features}"], "-o", ["features", "scores_features"]),
    "evaluate": (["evaluate", "{scores}"], "--plots", ["scores", "features", "model"]),
    "run": (["run", "{table}", "--clusters", "3"], "-o", ["table"]),
    "top": (["top", "{scores}", "--explain", "2", "--format", "csv"], "-o", ["scores", "features", "model"]),
    "explain": (["explain", "{model}", "{features}", "--scores", "{scores}", "--top", "2"], "--plots", ["model", "features", "scores"]),
    "report": (["report", "{scores}"], "-o", ["scores", "features", "model"]),
}
WRITES_NOTHING = {"inspect"}


def test_every_command_that_writes_has_an_output_case():
    writers = {name for name, command in commands().items()
               if any(set(p.opts) & {"-o", "--plots"} for p in command.params)}
    assert writers == set(OUTPUT_CASES) and not writers & WRITES_NOTHING
    assert set(commands()) == set(OUTPUT_CASES) | WRITES_NOTHING


@pytest.mark.parametrize("command", OUTPUT_CASES)
def test_no_output_may_name_a_file_the_command_reads(base, tmp_path, capsys, command):
    """The reported case: `top s.scores.h5 --explain 2 -o m.model.h5` replaced the model that the
    scores file records."""
    args, option, inputs = OUTPUT_CASES[command]
    paths = dict(base, scores_features=base["features"])
    folder = base["features"].parent
    before = snapshot(folder)
    for name in inputs:
        code, _, err = run_cli(capsys, *fill(args, paths, tmp_path), option, paths[name])
        assert code == 6, (command, name, err)
        assert clean_error(err) and "input of this command" in err, err
        assert snapshot(folder) == before  # the input intact, nothing written beside it


def test_a_plots_folder_that_holds_an_input_is_refused(base, capsys):
    folder = base["features"].parent
    before = snapshot(folder)
    code, _, err = run_cli(capsys, "evaluate", base["scores"], "--plots", folder)
    assert code == 6 and clean_error(err) and "holds" in err, err
    assert snapshot(folder) == before


# --------------------------------------------------------------------------- plots folders
def test_interrupted_plots_leave_no_partial_folder_and_keep_the_old_one(base, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from deepuad.stages import plots

    report = tmp_path / "report"
    code, out, err = run_cli(capsys, "evaluate", base["scores"], "--plots", report, "--json")
    assert code == 0, err
    assert len(json.loads(out)["plots"]) >= 3 and (report / "metrics.json").exists()
    before = snapshot(report)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C after the first figures were written
    monkeypatch.setattr(plots, "iteration_curves", interrupted)
    for target in (report, tmp_path / "fresh"):
        code, _, err = run_cli(capsys, "evaluate", base["scores"], "--plots", target)
        assert code == 130 and clean_error(err), err
    assert snapshot(report) == before  # the earlier folder whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no fresh/, no temporary folder


def test_plots_replace_only_a_folder_of_plots(base, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "evaluate", base["scores"], "--plots", mixed)
    assert code == 6 and clean_error(err) and "not plots" in err, err
    assert [p.name for p in mixed.iterdir()] == ["notes.txt"]


def test_a_wrong_model_fails_before_any_plot(base, tmp_path, capsys):
    """`evaluate --model FEATURES --plots` gave exit 1 after writing three PNGs."""
    code, _, err = run_cli(capsys, "evaluate", base["scores"], "--model", base["features"], "--plots", tmp_path / "p")
    assert code == 3 and clean_error(err) and "expected model" in err, err
    assert list(tmp_path.iterdir()) == []


def test_video_plots_are_capped_and_the_rest_counted(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from deepuad.stages import plots

    videos = tmp_path / "c3d"
    videos.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for index in range(3):
        np.savetxt(videos / f"Fight00{index}_x264.txt", rng.normal(size=(6, 4)))
        lines.append(f"Fight00{index}_x264.mp4  Fighting  16  47  -1  -1")
    (tmp_path / "ann.txt").write_text("\n".join(lines) + "\n")
    assert run_cli(capsys, "extract", videos, "--annotations", tmp_path / "ann.txt", "-o", tmp_path / "v.h5")[0] == 0
    scores = np.arange(18, dtype=np.float32)  # the last video has the highest peak, the first the lowest
    write_fake_scores(tmp_path / "v.h5", tmp_path / "s.h5", scores)
    monkeypatch.setattr(plots, "MAX_PLOTS", 2)
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "s.h5", "--plots", tmp_path / "p", "--json")
    assert code == 0, err
    summary = json.loads(out)
    drawn = sorted(p.name for p in (tmp_path / "p").glob("video_*.png"))
    assert drawn == ["video_Fight001_x264.png", "video_Fight002_x264.png"] and summary["plots_not_drawn"] == 1


# --------------------------------------------------------------------------- first contact
def test_bare_deepuad_prints_the_help_on_stdout(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and err == ""
    assert out.startswith("Usage: deepuad") and len(out.splitlines()) > 10
    assert all(name in out for name in commands())


def test_h_works_on_the_app_and_every_command(capsys):
    for args in (["-h"], *([name, "-h"] for name in commands())):
        code, out, err = run_cli(capsys, *args)
        assert code == 0 and out.startswith("Usage: deepuad"), (args, err)


def test_global_options_after_the_command(base, tmp_path, capsys):
    code, out, err = run_cli(capsys, "cluster", base["features"], "--clusters", "3", "-o", tmp_path / "c.h5", "--quiet")
    assert code == 0 and out == "", err
    code, out, err = run_cli(capsys, "inspect", base["scores"], "--debug", "-q")
    assert code == 0, err
    code, _, err = run_cli(capsys, "--json", "inspect", base["scores"])
    assert code == 2 and clean_error(err) and "put it after the command" in err, err


def test_a_global_flag_that_is_an_options_value_stays_one():
    from deepuad.cli.app import _globals_first

    assert _globals_first(["extract", "x.csv", "--quiet", "--drop", "-q"]) == ["--quiet", "extract", "x.csv", "--drop", "-q"]
    assert _globals_first(["top", "s.h5", "--", "--debug"]) == ["top", "s.h5", "--", "--debug"]
    assert _globals_first(["-q", "nosuch", "--debug"]) == ["-q", "nosuch", "--debug"]


# --------------------------------------------------------------------------- silent mistakes
def test_evaluate_without_labels_is_exit_4(base, tmp_path, capsys):
    unlabelled = make_table(tmp_path / "u.csv", n_normal=20, n_anomaly=2, with_label=False)
    assert run_cli(capsys, "extract", unlabelled, "--like", base["features"], "-o", tmp_path / "u.h5")[0] == 0
    assert run_cli(capsys, "score", base["model"], tmp_path / "u.h5", "-o", tmp_path / "s.h5")[0] == 0
    for extra in ([], ["--plots", tmp_path / "p"]):
        code, out, err = run_cli(capsys, "evaluate", tmp_path / "s.h5", *extra)
        assert code == 4 and out == "" and clean_error(err) and "no labels" in err, err
    assert not (tmp_path / "p").exists()


# what the help texts state, each broken once: every one exit 2 before any work
HELP_CONSTRAINTS = [
    (["cluster", "{features}", "--method", "distribution", "--max-dist", "5"], "--max-dist"),
    (["cluster", "{features}", "--method", "distribution", "--min-clus", "-1"], "--min-clus"),
    (["cluster", "{features}", "--method", "distribution", "--dc-normalize", "x"], "--dc-normalize"),
    (["cluster", "{features}", "--method", "distribution", "--anchors", "0"], "--anchors"),
    (["cluster", "{features}", "--method", "distribution", "--neighbors", "0"], "--neighbors"),
    (["cluster", "{features}", "--method", "distribution", "--sample", "1"], "--sample"),
    (["cluster", "{features}", "--method", "hdbscan", "--min-cluster-size", "1"], "--min-cluster-size"),
    (["cluster", "{features}", "--thres", "0.5"], "--thres applies to --method distribution"),
    (["cluster", "{features}", "--method", "distribution", "--clusters", "4"], "--clusters applies"),
    (["baseline", "{features}", "--epochs", "5"], "--epochs applies"),
    (["baseline", "{features}", "--method", "ae", "--batch-size", "0"], "--batch-size"),
    (["baseline", "{features}", "--method", "ae", "--activation", "x"], "--activation"),
    (["run", "{table}", "-o", "{out}", "--p", "40", "--p0", "35"], "below --p0"),
    (["run", "{table}", "-o", "{out}", "--lr", "-1"], "--lr must be"),  # each stage's options: no features.h5 left
    (["run", "{table}", "-o", "{out}", "--reselect-sample", "-5"], "--reselect-sample must be"),
    (["run", "{table}", "-o", "{out}", "--contamination", "0.9"], "--contamination"),
    (["run", "{table}", "-o", "{out}", "--scale", "x"], "--scale"),
    (["top", "{scores}", "--flagged", "-n", "3"], "not both"),
    (["top", "{scores}", "--model", "{model}"], "--explain"),
    (["explain", "{model}", "{features}", "--rows", "1", "--scores", "{scores}"], "--scores"),
]


@pytest.mark.parametrize("args,words", HELP_CONSTRAINTS, ids=[" ".join(a[2:]) for a, _ in HELP_CONSTRAINTS])
def test_every_constraint_a_help_text_states_is_checked(base, tmp_path, capsys, args, words):
    before = snapshot(base["features"].parent)
    code, _, err = run_cli(capsys, *fill(args, base, tmp_path / "out"), *(["-o", tmp_path / "o.h5"] if args[0] in ("cluster", "baseline") else []))
    assert code == 2 and clean_error(err) and words in err, err
    assert snapshot(base["features"].parent) == before and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- smaller things
def test_an_error_starts_on_its_own_first_line(base, capsys):
    code, _, err = run_cli(capsys, "score", base["model"], base["clusters"])  # fails inside the stage
    assert code == 3 and err.startswith("deepuad: error: "), repr(err)


def test_help_texts_say_what_the_command_does(capsys):
    out = run_cli(capsys, "run", "--help")[1]
    assert "Parquet" in out
    out = " ".join(run_cli(capsys, "cluster", "--help")[1].split())
    assert "overrides --percentile-over" in out and "--tol" not in out and "--score" not in out


def test_top_json_rows_use_the_columns_it_announces(base, capsys):
    code, out, err = run_cli(capsys, "top", base["scores"], "-n", "3", "--explain", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert "why" in result["columns"]
    for row in result["rows"]:
        assert set(row) <= set(result["columns"]), set(row) - set(result["columns"])
        assert len(row["why"]) == 2 and {"column", "value", "expected", "share"} <= set(row["why"][0])


def test_the_build_requirement_reads_the_license_expression():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requires = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    if isinstance(project["project"].get("license"), str):  # PEP 639: setuptools >= 77
        assert requires == ["setuptools>=77"], requires


def test_top_never_imports_torch(base):
    code = ("import sys\nfrom deepuad.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as exit_:\n"
            "    print(exit_.code, 'torch' in sys.modules, file=sys.stderr)\n")
    child = subprocess.run([sys.executable, "-c", code, "top", str(base["scores"]), "-n", "5", "--format", "jsonl"],
                           capture_output=True, text=True, env=CHILD_ENV, timeout=120)
    assert child.stderr.split() == ["0", "False"], child.stderr
    assert len(child.stdout.splitlines()) == 5


def test_explain_imports_torch_only_when_the_score_needs_the_network(base, tmp_path):
    """A model scored by the k-NN part alone is explained with NumPy alone, and the explanation
    is the one its DeepUAD gives; the default score has the network's error as a part, and needs it."""
    model = tmp_path / "knn.model.h5"
    code, _, err = cli("-q", "train", base["features"], base["clusters"], "-o", model, "--score", "knn", *TRAIN)
    assert code == 0, err
    code = ("import json, sys\nfrom deepuad.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as exit_:\n"
            "    print(exit_.code, 'torch' in sys.modules, file=sys.stderr)\n")
    answers = {}
    for name, path in (("knn", model), ("default", base["model"])):
        child = subprocess.run([sys.executable, "-c", code, "explain", str(path), str(base["features"]), "--rows", "0,61,64",
                                "--json"], capture_output=True, text=True, env=CHILD_ENV, timeout=120)
        answers[name] = child
    assert answers["knn"].stderr.split() == ["0", "False"], answers["knn"].stderr
    assert answers["default"].stderr.split() == ["0", "True"], answers["default"].stderr
    from deepuad.estimators.explain import explain_rows
    from deepuad import DeepUAD
    from deepuad.stages._common import load_scorer
    from deepuad.stages.answers import read_rows

    scorer, _ = load_scorer(model)
    detector = DeepUAD.load(model)
    assert type(scorer).__name__ == "Scorer" and type(load_scorer(base["model"])[0]).__name__ == "DeepUAD"
    data = read_rows(base["features"], np.array([0, 61, 64]))
    np.testing.assert_array_equal(scorer.decision_function(data["X"]), detector.decision_function(data["X"]))
    assert explain_rows(scorer, data["X"], data["decoder"], 3) == explain_rows(detector, data["X"], data["decoder"], 3)
    shown = json.loads(answers["knn"].stdout)
    assert [row["score"] for row in shown["rows"]] == pytest.approx(detector.decision_function(data["X"]).tolist(), abs=1e-6)


def test_an_interrupt_python_wrapped_in_another_error_is_still_an_interrupt(base, capsys, monkeypatch):
    """A SIGTERM that lands while Python creates a class (an import's dataclass calling
    ``__set_name__``) comes back as a RuntimeError raised from it, and one raised in an h5py
    callback as a SystemError that a reader reports as a corrupt file: exit 130, one line, as any
    SIGTERM; a RuntimeError or a corrupt file of their own stay what they are."""
    from deepuad.errors import InputError, Terminated
    from deepuad.stages import inspect as inspect_stage

    def wrapped(*args, **kwargs):
        raise RuntimeError("Error calling __set_name__ on 'Field' instance '_cache'") from Terminated()
    monkeypatch.setattr(inspect_stage, "describe", wrapped)
    code, _, err = run_cli(capsys, "inspect", base["scores"])
    assert (code, err.strip()) == (130, "deepuad: error: terminated (SIGTERM)")

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(inspect_stage, "describe", broken)
    code, _, err = run_cli(capsys, "inspect", base["scores"])
    assert code == 1 and "internal error: RuntimeError: a bug" in err

    def read_broken_off(*args, **kwargs):  # h5py: an interrupt in its callback comes back as a SystemError
        try:
            raise SystemError("<cyfunction FastRLock.__exit__> returned a result with an exception set") from Terminated()
        except SystemError as error:
            raise InputError(f"unreadable (corrupt?): {error}", base["scores"]) from None
    monkeypatch.setattr(inspect_stage, "describe", read_broken_off)
    code, _, err = run_cli(capsys, "inspect", base["scores"])
    assert (code, err.strip()) == (130, "deepuad: error: terminated (SIGTERM)")

    def corrupt(*args, **kwargs):
        raise InputError("unreadable (corrupt?): bad object header", base["scores"])
    monkeypatch.setattr(inspect_stage, "describe", corrupt)
    code, _, err = run_cli(capsys, "inspect", base["scores"])
    assert code == 3 and "unreadable (corrupt?): bad object header" in err
