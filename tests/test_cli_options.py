"""One place per option (deepuad/cli/options.py, deepuad/cli/app.py): every option is declared
once in the command line's source, a default it shares with its stage is written once
(deepuad/stages/defaults.py), the layers below it name parameters and never a flag, and the
command line alone turns each parameter a message names into the option that sets it. (That the
spec's options are the spec's, flag, default and help: test_estimators_params.py.)"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from helpers import run_cli

PACKAGE = Path(__file__).resolve().parents[1] / "deepuad"
# below the command line: what a Python caller calls, and what the command line calls
BELOW = ("stages", "inputs", "estimators", "artifacts")
SPEC = PACKAGE / "estimators" / "params.py"  # the parameter spec: where the spec'd options' flags are declared
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])(?![\w-])")
NAMED = re.compile(r"(?<!`)`(\w+)`(?!`)")
# flags that two different options carry, each in its own command, each declared in its own place
SHARED_FLAGS = {
    "-o": "--output (what a command writes) and run's --output-dir",
    "--paper": "the paper's reading of both selections (train, run) and of the initial one (cluster)",
    "--model": "extract's TorchScript feature extractor and the model file of evaluate, top and report",
    "--labels": "extract's MNIST labels and evaluate's ground-truth features",
    "--contamination": "baseline's share of its own and merge-scores' (the shards' by default); score's is the spec's",
}


def sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (PACKAGE / folder).rglob("*.py"))


def strings(path: Path) -> list[str]:
    """The string constants of a module but its docstrings (f-strings: their literal parts)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


# --------------------------------------------------------------------------- below the command line
def stored_descriptions() -> set[str]:
    """The descriptions artifacts store with their datasets: the files' content, as deepuad has always
    written it (tests/golden pins it), not messages; some say which option of extract made a dataset."""
    from deepuad import artifacts as art
    from deepuad.artifacts.features import ID_COLUMN_DESCRIPTION

    return {*art.DESCRIPTIONS.values(), ID_COLUMN_DESCRIPTION}


def test_no_layer_below_the_command_line_names_a_flag():
    described = stored_descriptions()
    naming = {relative(path): [text for text in strings(path) if FLAG.search(text) and text not in described]
              for path in sources(*BELOW) if path != SPEC}
    assert {path: texts for path, texts in naming.items() if texts} == {}
    assert any(FLAG.search(text) for text in described)  # what the exception is for


def test_no_layer_below_the_command_line_raises_usage_error():
    raising = set()
    for path in sources(*BELOW):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.Name) and node.id == "UsageError" for node in ast.walk(tree)):
            raising.add(relative(path))
    assert raising == set()


def test_every_parameter_a_message_names_is_an_option_of_a_command():
    from deepuad.cli.app import option_names

    options = option_names(None)
    named = Counter()
    for path in sources(*BELOW, "cli"):
        for text in strings(path):
            named.update(NAMED.findall(text))
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # ParamError("name", ...): the parameter it names
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ParamError" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                named[node.args[0].value] += 1
    assert len(named) > 40  # what the scan finds: the parameters of every stage's messages
    assert {name for name in named if name not in options} == set()


# --------------------------------------------------------------------------- the command line
def declared_flags() -> Counter:
    """How many ``typer.Option(...)`` calls in the command line's source declare each flag."""
    flags = Counter()
    for path in sources("cli"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Option":
                flags.update(arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                             and arg.value.startswith("-"))
    return flags


def test_every_option_is_declared_once():
    flags = declared_flags()
    assert {"-o", "--output", "--force", "--json", "--device", "--threads", "--label-column", "--id-column"} <= set(flags)
    assert {flag for flag, count in flags.items() if count > 1} == set(SHARED_FLAGS)
    assert all(flags[flag] == 2 for flag in SHARED_FLAGS)


def test_a_parameter_has_one_option_in_every_command():
    """A parameter's name means one option wherever it is offered, so that a message naming it
    names the option the user typed, whichever command runs."""
    import typer

    from deepuad.cli import app

    spelled: dict[str, set] = {}
    for command in typer.main.get_command(app).commands.values():
        for param in command.params:
            if param.param_type_name == "option":
                spelled.setdefault(param.name, set()).add(tuple(param.opts))
    assert {name: opts for name, opts in spelled.items() if len(opts) > 1} == {}


@pytest.mark.parametrize("command,name,spelling", [
    ("top", "features_path", "--features"),  # an option of top, an argument of score
    ("score", "features_path", "features"),
    ("score", "force", "--force"),
    ("run", "force", "--force"),  # not run's: the option of the command that has it
    ("train", "reselect_fit_sample", "--reselect-sample"),  # the spec's flag
    ("explain", "top_n", "--top"),
    ("top", "output", "-o"),  # an option's first name, as the help lists it
])
def test_a_message_names_the_option_of_the_running_command(monkeypatch, command, name, spelling):
    import importlib

    from deepuad.errors import ParamError, StaleError

    frame = importlib.import_module("deepuad.cli.app")  # the module: deepuad.cli.app names the typer app too

    monkeypatch.setitem(frame.state, "command", command)
    assert frame.message(StaleError(f"pass `{name}`", "x.h5")) == f"x.h5: pass {spelling}"
    assert frame.message(ParamError(name, "must be `k`")) == f"{spelling} must be -k"


def test_a_stage_s_refusal_reaches_the_user_as_the_option(tmp_path, capsys):
    # top checks --format before it reads anything: the stage names the parameters fmt and output
    code, _, err = run_cli(capsys, "top", tmp_path / "none.scores.h5", "--format", "parquet")
    assert code == 2 and err == "deepuad: error: --format parquet needs -o FILE (Parquet is binary)\n", err
    code, _, err = run_cli(capsys, "top", tmp_path / "none.scores.h5", "--format", "xml")
    assert code == 2 and "--format must be one of table, csv, jsonl, parquet, got 'xml'" in err, err


# --------------------------------------------------------------------------- one place per default
def command_functions() -> dict[str, ast.FunctionDef]:
    """Every command's function in deepuad/cli/commands/, by its name."""
    found = {}
    for path in sources("cli/commands"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and any("command" in ast.unparse(d) for d in node.decorator_list):
                found[node.name] = node
    return found


def stage_of(command: ast.FunctionDef):
    """The stage function a command calls: the one it imports ``as stage`` (a stage module so
    imported: its function of the command's name); None for a command without one."""
    for node in ast.walk(command):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("deepuad.stages"):
            for alias in node.names:
                if alias.asname == "stage":
                    found = getattr(importlib.import_module(node.module), alias.name)
                    return getattr(found, command.name) if inspect.ismodule(found) else found
    return None


def defaults_of(function: ast.FunctionDef) -> dict[str, ast.expr]:
    """Parameter name -> the expression of its default."""
    positional = function.args.posonlyargs + function.args.args
    pairs = list(zip((a.arg for a in positional[len(positional) - len(function.args.defaults):]), function.args.defaults))
    pairs += [(a.arg, d) for a, d in zip(function.args.kwonlyargs, function.args.kw_defaults) if d is not None]
    return dict(pairs)


def has_value(node: ast.expr) -> bool:
    """Whether a default is a value: None, False and an empty tuple (no value given, a flag left
    off) are none to repeat."""
    if isinstance(node, ast.Constant):
        return node.value is not None and node.value is not False
    return not (isinstance(node, (ast.Tuple, ast.List)) and not node.elts)


def is_literal(node: ast.expr) -> bool:
    """A value written out, not read from a name."""
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(is_literal(item) for item in node.elts)
    if isinstance(node, ast.UnaryOp):
        return is_literal(node.operand)
    return isinstance(node, ast.Constant)


def written_twice(command: ast.FunctionDef, stage: ast.FunctionDef) -> list[str]:
    """The options of ``command`` whose default is also its stage's: such a default is to be written
    once, in a constant that both read (the command's expression holds the stage's; the command
    may convert it: "x".join(...)), never as a value in either."""
    mine, theirs = defaults_of(command), defaults_of(stage)
    found = []
    for name in sorted(mine.keys() & theirs.keys()):
        cli, own = mine[name], theirs[name]
        if not (has_value(cli) and has_value(own)):
            continue
        if is_literal(cli) or is_literal(own) or ast.dump(own) not in {ast.dump(node) for node in ast.walk(cli)}:
            found.append(f"{command.name} {name}: {ast.unparse(cli)} and {stage.name}'s {ast.unparse(own)}")
    return found


def test_no_default_is_written_in_a_command_and_again_in_its_stage():
    import typer

    from deepuad.cli import app

    commands = command_functions()
    assert set(commands) == {name.replace("-", "_") for name in typer.main.get_command(app).commands}  # every one
    stages = {name: stage_of(command) for name, command in commands.items()}
    assert {name for name, stage in stages.items() if stage is None} == {"inspect"}  # describe takes a path only
    found = []
    for name, stage in stages.items():
        if stage is not None:
            tree = ast.parse(textwrap.dedent(inspect.getsource(stage))).body[0]
            found += written_twice(commands[name], tree)
    assert not found, "defaults written in a command and in its stage:\n" + "\n".join(found)


def test_the_default_check_sees_a_default_written_twice():
    command, stage = ast.parse("def c(n=20, k=C['k'], j=C['j'], size='x'.join(C['size']), f=False, o=None, e=0, t=None): pass\n"
                               "def s(n=20, k=5, j=C['j'], size=C['size'], f=False, o=None, e=0, t=()): pass").body
    assert [line.split(":")[0] for line in written_twice(command, stage)] == ["c e", "c k", "c n"]
