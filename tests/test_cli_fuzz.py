"""Property-based fuzzing of the exit-code contract (issue 14), with Hypothesis.

Generated CSVs (delimiters, quoting, encodings, compression, odd values, odd headers) go through
``extract``, and generated option values through every command. Whatever comes in, a command
ends with a documented exit code other than 1 (130 needs a signal, which none of these send):
0 with a valid artifact, or one clean error line, and no temporary file, no changed input, no
partial output.

Bounded for CI: in-process calls, tiny data (a 66-row table, 4-2 autoencoder, at most 3 epochs),
a fixed number of examples per test, derandomized (the same examples on every run; set
DEEPUAD_FUZZ_EXAMPLES to explore more) and no example database on disk.
"""

import bz2
import csv
import gzip
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import clean_error, cli, temp_litter
from deepuad import artifacts as art

pytestmark = pytest.mark.slow
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7}
EXAMPLES = int(os.environ.get("DEEPUAD_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=EXAMPLES or 25, deadline=None, derandomize=not EXAMPLES, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def check_contract(args, out_path: Path | None, work: Path, inputs_before: dict, inputs_folder: Path):
    """Run ``args`` in-process and assert the exit-code contract; returns the exit code."""
    code, out, err = cli(*args)
    assert code in DOCUMENTED, (args, code, err)
    if code:
        assert clean_error(err), (args, err)
        assert out_path is None or not out_path.exists(), (args, "an output after a failure")
    elif "--json" in args:
        _strict_json(out.strip().splitlines()[-1])
    assert temp_litter(work) == [] and temp_litter(inputs_folder) == [], args
    assert _digest(inputs_folder) == inputs_before, (args, "an input changed")
    return code


# --------------------------------------------------------------------------- values
ODD_CELLS = ["", " ", "nan", "NaN", "-nan", "inf", "-inf", "1e308", "-1e308", "1e309", "5e-324", "1,004.45", "1.004,45",
             "n/a", "NULL", "\x00", '"', '""', "'", "a\nb", "a,b", "\t", "é", "\U0001f642", "\ufeff", "0x1F", "1_000", "True",
             "tcp", "udp", "bad", "ok", "0", "1", "-0", "+3", ".5", "5.", "1e", "--1", "x" * 300]
cells = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(ODD_CELLS),
    st.text(max_size=8),
)
names = st.one_of(st.sampled_from(["a", "b", "c", "label", "proto", "a.1", "", " label", "Unnamed: 0"]), st.text(max_size=6))


@st.composite
def tables(draw):
    """(file name, bytes, the text encoding it was written in, its column names)."""
    width = draw(st.integers(1, 4))
    header = draw(st.lists(names, min_size=width, max_size=width, unique=draw(st.integers(0, 4)) > 0))  # duplicates 1 in 5
    numeric_columns = draw(st.lists(st.booleans(), min_size=width, max_size=width))
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        row = []
        for numeric in numeric_columns:  # mostly well-formed columns, with odd cells sprinkled in
            if draw(st.integers(0, 9)) == 0:
                row.append(draw(cells))
            elif numeric:
                row.append(repr(draw(st.floats(-1e6, 1e6, allow_nan=False))))
            else:
                row.append(draw(st.sampled_from(["tcp", "udp", "icmp", "bad", "ok"])))
        rows.append(row)
    delimiter = draw(st.sampled_from([",", "\t", ";", "|"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, quoting=quoting if quoting != csv.QUOTE_NONNUMERIC else csv.QUOTE_MINIMAL,
                        lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(header)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    data = text.getvalue().encode(encoding, errors="replace")
    suffix = ".tsv" if delimiter == "\t" and draw(st.booleans()) else ".csv"
    compression = draw(st.sampled_from(["", "", ".gz", ".bz2", "truncated.gz"]))
    if compression == ".gz":
        data = gzip.compress(data)
    elif compression == ".bz2":
        data = bz2.compress(data)
    elif compression == "truncated.gz":
        data = gzip.compress(data)[: max(10, len(data) // 3)]
        compression = ".gz"
    return f"input{suffix}{compression}", data, encoding, header


# mostly values some option accepts (fractions, percentages, small counts), and the edges
ints = st.one_of(st.integers(1, 40), st.integers(-3, 0), st.sampled_from([2**31, 2**63, 10**20]))
floats = st.one_of(st.floats(0.001, 0.5), st.floats(1, 99), st.floats(-200, 200, allow_nan=False),
                   st.sampled_from([0.0, -0.0, 1.0, float("nan"), float("inf"), float("-inf"), 1e308, 5e-324, 1e30]))
small_epochs = st.integers(-2, 3)  # an epoch budget is not fuzzed upwards: 10**9 epochs is a long run, not a bug
words = st.one_of(st.text(max_size=6), st.sampled_from(["", "x", "auto", "-1", "nan", "0/0", "1/0", "2/1", "1,2", "4,,2",
                                                         "4,0", "0", "60,30,10", "4,2"]))


def _options(draw, spec: dict) -> list[str]:
    """Up to three options of ``spec`` (option -> strategy of values), as command-line words: a
    few at a time, so that one invalid value does not hide what the others do."""
    args = []
    for option in draw(st.lists(st.sampled_from(sorted(spec)), max_size=3, unique=True)):
        value = draw(spec[option])
        if value is True:
            args.append(option)
        elif value is not False:
            args += [option, str(value)]
    return args


# --------------------------------------------------------------------------- extract
@FUZZ
@given(data=st.data())
def test_extract_keeps_the_contract_on_generated_tables(tmp_path_factory, data):
    work = tmp_path_factory.mktemp("extract")
    name, content, encoding, header = data.draw(tables())
    source = work / "in"
    source.mkdir()
    (source / name).write_bytes(content)
    out = work / "out.h5"
    column = st.one_of(st.sampled_from(header), names)
    options = _options(data.draw, {
        "--label-column": column, "--anomaly-values": st.sampled_from(["bad", "ok", "1", "nosuch", "bad,ok"]),
        "--categorical": column, "--drop": column, "--scale": st.sampled_from(["minmax", "standard", "none", "bogus"]),
        "--chunk-rows": st.integers(-1, 30), "--encoding": st.sampled_from([encoding, "utf-8", "latin-1", "no-such-codec"]),
        "--type": st.sampled_from(["auto", "table", "numpy", "idx", "bogus"]), "--seed": ints, "--json": st.booleans(),
        "--compress": st.booleans(),
    })
    before = _digest(source)
    code = check_contract(["extract", source / name, "-o", out, *options], out, work, before, source)
    if code == 0:
        with art.open_artifact(out, "features") as f:
            assert np.isfinite(art.read_array(f, "X")).all()


# --------------------------------------------------------------------------- every other command
COMMANDS = {
    "cluster": (["cluster", "{features}"], {
        "--p0": floats, "--clusters": ints, "--method": st.sampled_from(["gmm", "kmeans", "hdbscan", "distribution", "dbscan"]),
        "--covariance": st.sampled_from(["diag", "full", "tied", "spherical", "x"]), "--fit-sample": ints,
        "--min-fraction": floats, "--seed": ints, "--thres": words, "--min-clus": ints, "--max-dist": floats,
        "--anchors": ints, "--neighbors": ints, "--sample": ints, "--min-cluster-size": ints,
        "--percentile-over": st.sampled_from(["samples", "clusters", "x"]), "--json": st.booleans(),
    }),
    "train": (["train", "{features}", "{clusters}", "--layers", "4,2", "--device", "cpu"], {
        "--p": floats, "--r": ints, "--epochs": small_epochs, "--batch-size": ints, "--lr": floats, "--layers": words,
        "--activation": st.sampled_from(["tanh", "relu", "x"]), "--loss": st.sampled_from(["mse", "cosine", "x"]),
        "--reselect-by": st.sampled_from(["variance", "error", "x"]), "--reselect-clusters": ints, "--reselect-sample": ints,
        "--percentile-over": st.sampled_from(["samples", "clusters"]), "--tol": floats, "--min-fraction": floats,
        "--precision": st.sampled_from(["32", "bf16", "16", "64"]), "--threads": ints, "--seed": ints,
        "--resume": st.booleans(), "--force": st.booleans(), "--json": st.booleans(),
    }),
    "score": (["score", "{model}", "{features}"], {
        "--contamination": floats, "--threshold": floats, "--device": st.sampled_from(["cpu", "auto", "tpu", "cuda:x"]),
        "--threads": ints, "--force": st.booleans(), "--shard": words, "--batch-rows": ints, "--json": st.booleans(),
    }),
    "merge-scores": (["merge-scores", "{shard0}", "{shard1}"], {
        "--contamination": floats, "--threshold": floats, "--json": st.booleans(),
    }),
    "baseline": (["baseline", "{features}", "--device", "cpu"], {
        "--method": st.sampled_from(["iforest", "ocsvm", "ae", "dagmm", "x"]), "--contamination": floats,
        "--epochs": small_epochs, "--batch-size": ints, "--lr": floats, "--layers": words,
        "--activation": st.sampled_from(["tanh", "relu", "x"]), "--max-train-samples": ints, "--threads": ints,
        "--seed": ints, "--json": st.booleans(),
    }),
    "evaluate": (["evaluate", "{scores}"], {
        "--labels": st.sampled_from(["{features}", "{scores}", "{model}", "{table}"]), "--json": st.booleans(),
    }),
    "inspect": (["inspect", "{file}"], {"--json": st.booleans()}),
    "run": (["run", "{table}", "--layers", "4,2", "--clusters", "3", "--reselect-clusters", "3", "--device", "cpu"], {
        "--label-column": st.sampled_from(["label", "proto", "nope"]), "--anomaly-values": st.sampled_from(["bad", "ok", "x"]),
        "--p0": floats, "--p": floats, "--r": ints, "--epochs": small_epochs, "--lr": floats, "--contamination": floats,
        "--threads": ints, "--seed": ints, "--method": st.sampled_from(["gmm", "kmeans", "x"]), "--json": st.booleans(),
    }),
}
OUTPUT_IS_FOLDER = {"run"}
NO_OUTPUT = {"evaluate", "inspect"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_keeps_the_contract_on_generated_options(built, tmp_path_factory, command):
    base, spec = COMMANDS[command]
    inputs_folder = built["features"].parent
    before = _digest(inputs_folder)
    examples = {"train": 12, "run": 6, "baseline": 12}.get(command, 20)

    @settings(FUZZ, max_examples=EXAMPLES or examples)
    @given(data=st.data())
    def fuzz(data):
        work = tmp_path_factory.mktemp(command)
        places = {key: str(value) for key, value in built.items()}
        places["file"] = data.draw(st.sampled_from([places[k] for k in ("features", "clusters", "model", "scores", "shard0")]))
        options = [word.format(**places) for word in _options(data.draw, spec)]
        if command == "train" and "--resume" in options:  # resume from a copy of the finished model (its checkpoint)
            shutil.copy(built["model"], work / "out.h5")
        out = work / ("run" if command in OUTPUT_IS_FOLDER else "out.h5")
        args = [word.format(**places) for word in base] + options + ([] if command in NO_OUTPUT else ["-o", out])
        code, stdout, err = cli(*args)
        assert code in DOCUMENTED, (args, code, err)
        if code:
            assert clean_error(err), (args, err)
            if command not in OUTPUT_IS_FOLDER and "--resume" not in options:
                assert not out.exists(), (args, "an output after a failure")
        elif "--json" in args:
            _strict_json(stdout.strip().splitlines()[-1])
        assert temp_litter(work) == [] and temp_litter(inputs_folder) == [], args
        assert _digest(inputs_folder) == before, (args, "an input changed")

    fuzz()
