"""deepuad top: ranking, decoding back to the original columns, output formats, errors.

The scores files here are written through the real writer (stages.write_scores) with scores the
test chooses, so each test knows which rows must come first; test_estimators_explain.py runs top on a
trained model's scores."""

import csv
import io
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from helpers import KDD_SAMPLE as KDD, cli, make_media, make_table, replace_dataset, rewrite, run_cli, write_fake_scores


@pytest.fixture(scope="module")
def kdd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kdd")
    code, _, err = cli("--quiet", "extract", KDD, "-o", folder / "kdd.features.h5", "--label-column", "label",
                       "--anomaly-values", "normal.")
    assert code == 0, err
    raw = pd.read_csv(KDD, keep_default_na=False)
    scores = np.random.default_rng(0).permutation(len(raw)).astype(np.float32)  # distinct: one true order
    write_fake_scores(folder / "kdd.features.h5", folder / "kdd.scores.h5", scores)
    return folder, raw, scores


def test_kdd_top_rows_come_back_in_their_original_columns(kdd, capsys):
    folder, raw, scores = kdd
    code, out, err = run_cli(capsys, "top", folder / "kdd.scores.h5", "-n", "15")  # a pipe: CSV
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["id"]) for r in rows] == list(np.argsort(-scores)[:15])
    assert [int(r["rank"]) for r in rows] == list(range(1, 16))
    header = list(rows[0])
    assert {"protocol_type", "service", "flag"} <= set(header)
    assert not any("=" in name for name in header)  # no one-hot column names
    assert "label" not in header  # the ground truth is never a feature
    for row in rows:
        source = raw.iloc[int(row["id"])]
        for column in ("protocol_type", "service", "flag"):
            assert row[column] == source[column]
        for column in ("src_bytes", "dst_bytes", "count", "same_srv_rate", "dst_host_srv_count"):
            assert float(row[column]) == pytest.approx(float(source[column]), rel=1e-5, abs=1e-5 * raw[column].max())
        assert int(row["y"]) == int(source["label"] == "normal.")
        assert float(row["score"]) == pytest.approx(float(scores[int(row["id"])]))
    code, out, err = run_cli(capsys, "top", folder / "kdd.scores.h5", "-n", "3", "--format", "table")
    assert code == 0, err
    first = raw.iloc[int(np.argmax(scores))]
    assert "protocol_type" in out and "service" in out and first["service"] in out and "protocol_type=" not in out


def test_formats_agree_and_files_are_written_whole(kdd, capsys, tmp_path):
    folder, raw, scores = kdd
    code, out, err = run_cli(capsys, "top", folder / "kdd.scores.h5", "-n", "7", "--format", "jsonl")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 7 and [r["id"] for r in lines] == list(np.argsort(-scores)[:7])
    code, out, err = run_cli(capsys, "top", folder / "kdd.scores.h5", "-n", "7", "-o", tmp_path / "top.parquet", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["format"] == "parquet" and summary["shown"] == 7 and summary["rows_total"] == len(raw)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "top.parquet").to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in lines]
    assert [r["service"] for r in table] == [r["service"] for r in lines]
    assert [r["src_bytes"] for r in table] == pytest.approx([r["src_bytes"] for r in lines])
    code, out, err = run_cli(capsys, "top", folder / "kdd.scores.h5", "-n", "7", "-o", tmp_path / "top.csv")
    assert code == 0, err
    written = list(csv.DictReader(open(tmp_path / "top.csv")))
    assert [int(r["id"]) for r in written] == [r["id"] for r in lines]
    assert not list(tmp_path.glob(".*.tmp"))


def test_flagged_gives_exactly_the_flagged_rows(kdd, capsys):
    folder, raw, scores = kdd
    with h5py.File(folder / "kdd.scores.h5") as f:
        flagged = set(np.flatnonzero(f["is_anomaly"][()]).tolist())
    code, out, err = run_cli(capsys, "top", folder / "kdd.scores.h5", "--flagged", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert {r["id"] for r in result["rows"]} == flagged and len(result["rows"]) == len(flagged) == result["flagged_total"]
    got = [r["score"] for r in result["rows"]]
    assert got == sorted(got, reverse=True) and all(r["is_anomaly"] == 1 for r in result["rows"])


def test_top_on_arrays_images_and_video(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(1)
    # a NumPy array: values come back unscaled, in columns x0..
    X = rng.normal(5, 2, size=(40, 3))
    np.savez(tmp_path / "arr.npz", X=X)
    # images: ids are paths, class_label is shown; 4x4 grey = 16 columns (values shown);
    # video: ids are video#segment, with video and segment columns; 40 columns (values not shown)
    make_media(tmp_path, rng, images_per_class=6, segments=5)
    for source, options in (("arr.npz", []), ("imgs", ["--size", "4x4", "--grayscale"]), ("vid", [])):
        features = tmp_path / f"{source.split('.')[0]}.features.h5"
        code, _, err = run_cli(capsys, "--quiet", "extract", tmp_path / source, "-o", features, *options)
        assert code == 0, err
        with h5py.File(features) as f:
            n_rows, ids = f["X"].shape[0], [v.decode() if isinstance(v, bytes) else int(v) for v in f["ids"][()]]
        scores = np.arange(n_rows, dtype=np.float32)[::-1].copy()  # row 0 first
        write_fake_scores(features, tmp_path / f"{source}.scores.h5", scores)
        code, out, err = run_cli(capsys, "top", tmp_path / f"{source}.scores.h5", "-n", "3", "--json")
        assert code == 0, err
        rows = json.loads(out)["rows"]
        assert [r["id"] for r in rows] == ids[:3]
        if source == "arr.npz":
            assert [rows[0][f"x{j}"] for j in range(3)] == pytest.approx(X[0], rel=1e-5)
        if source == "imgs":
            assert rows[0]["id"].endswith(".png") and rows[0]["class_label"] in ("cats", "dogs")
            pixels = np.asarray(Image.open(tmp_path / "imgs" / rows[0]["id"]), dtype=float).ravel() / 255
            assert [rows[0][f"x{j}"] for j in range(16)] == pytest.approx(pixels, abs=1e-6)
        if source == "vid":
            assert rows[0]["id"] == f"{rows[0]['video']}#{rows[0]['segment']}" and "x0" not in rows[0]


def test_errors_are_one_line_with_documented_codes(kdd, capsys, tmp_path):
    folder, raw, scores = kdd
    other = make_table(tmp_path / "other.csv")
    code, _, err = run_cli(capsys, "--quiet", "extract", other, "-o", tmp_path / "other.features.h5", "--label-column", "label",
                           "--anomaly-values", "bad")
    assert code == 0, err
    cases = [
        (["top", tmp_path / "missing.h5"], 3, "missing.h5"),
        (["top", folder / "kdd.features.h5"], 3, "expected scores"),
        (["top", folder / "kdd.scores.h5", "--features", tmp_path / "other.features.h5"], 5, "other.features.h5"),
        (["top", folder / "kdd.scores.h5", "-n", "0"], 2, "-n"),
        (["top", folder / "kdd.scores.h5", "--format", "parquet"], 2, "-o"),
        (["top", folder / "kdd.scores.h5", "--format", "xml"], 2, "--format"),
        (["top", folder / "kdd.scores.h5", "-o", tmp_path / "nowhere" / "t.csv"], 6, "nowhere"),
        (["top", folder / "kdd.scores.h5", "-o", folder / "kdd.scores.h5"], 6, "input"),
        (["top", folder / "kdd.scores.h5", "--explain", "2"], 2, "--model"),  # these scores record no model
    ]
    for args, expected, needle in cases:
        code, out, err = run_cli(capsys, *args)
        assert code == expected, (args, err)
        assert err.startswith("deepuad: error:") and err.count("\n") == 1 and needle in err, err
        assert "Traceback" not in err
    assert (folder / "kdd.scores.h5").exists()


def test_help_shows_an_example(capsys):
    for command in ("top", "explain"):
        code, out, _ = run_cli(capsys, command, "--help")
        assert code == 0 and "Example" in out and f"deepuad {command} " in out and "--json" in out


def test_decoder_undoes_the_scaling_and_one_hot_groups():
    from deepuad.inputs.decoding import Decoder, rank

    encoding = {"numeric_columns": ["bytes", "rate"], "categorical_columns": ["proto"],
                "vocabularies": {"proto": ["icmp", "tcp", "udp"]},
                "offset": [54000.0, 0.3, 0.0, 0.0, 0.0], "scale": [1e6, 1.4, 1.0, 1.0, 1.0]}
    decoder = Decoder(encoding, 5)
    raw = np.array([[54540.0, 0.3, 0, 1, 0], [1054000.0, 1.7, 0, 0, 0]])  # the second: a category unseen at fit time
    X = ((raw - decoder.offset) / decoder.scale).astype(np.float32)
    assert decoder.decode(X) == [{"proto": "tcp", "bytes": 54540, "rate": 0.3}, {"proto": None, "bytes": 1054000, "rate": 1.7}]
    assert decoder.decode(np.array([[0, 0, 0.2, 0.1, 0.3]]), expected=True)[0]["proto"] == "udp"  # what a reconstruction points to
    assert [name for name, _, _ in decoder.groups] == ["bytes", "rate", "proto"]
    with pytest.raises(ValueError):
        Decoder(encoding, 6)  # an encoding that does not describe X
    scores = np.array([0.5, 2.0, 2.0, -1.0])
    assert rank(scores).tolist() == [1, 2, 0, 3] and rank(scores, n=2).tolist() == [1, 2]  # ties: the earlier row first
    assert rank(scores, np.array([1, 0, 1, 1]), flagged=True).tolist() == [2, 0, 3]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "parquet"])
def test_rows_written_a_few_at_a_time_are_those_written_at_once(kdd, tmp_path, fmt):
    """top writes its rows chunk by chunk: with chunks of 7 rows, the 500 flagged rows (and a
    file with none) come out as they do in one chunk (Parquet: the same table, in row groups)."""
    from functools import partial

    from deepuad.cli.app import strict_json
    from deepuad.stages import answers

    folder, raw, scores = kdd
    none_flagged = write_fake_scores(folder / "kdd.features.h5", tmp_path / "none.scores.h5", scores)
    rewrite(none_flagged, lambda f: replace_dataset(f, "is_anomaly", np.zeros(len(scores), dtype=np.int8)))

    def written(scores_path, chunk_rows):
        result = answers.top(scores_path, flagged=True, chunk_rows=chunk_rows)
        if fmt == "parquet":
            out = tmp_path / f"{chunk_rows}.parquet"
            answers.write_rows(result, fmt, out)
            return out
        text = []
        writer = {"csv": answers.write_csv, "jsonl": answers.write_jsonl,
                  "json": partial(answers.write_json, dumps=strict_json)}[fmt]
        writer(result, text.append)
        return "".join(text)

    for scores_path, flagged in ((folder / "kdd.scores.h5", 500), (none_flagged, 0)):
        whole, chunked = written(scores_path, 100_000), written(scores_path, 7)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            assert pq.read_table(chunked).equals(pq.read_table(whole)) and pq.read_table(whole).num_rows == flagged
            assert pq.ParquetFile(chunked).num_row_groups == max(1, -(-flagged // 7))
        else:
            assert chunked == whole
            lines = whole.count("\n") if fmt != "json" else len(json.loads(whole)["rows"])
            assert lines == flagged + (fmt == "csv")


def test_flagged_rows_are_explained_a_hundred_at_most(kdd, capsys):
    """How many rows are flagged is the file's choice, and each explained row is scored once per
    column: more than 100 with --flagged --explain is a usage error that says how to get them."""
    folder, raw, scores = kdd
    code, _, err = run_cli(capsys, "top", folder / "kdd.scores.h5", "--flagged", "--explain", "2")
    assert code == 2 and err.count("\n") == 1 and "500 rows are flagged" in err and "-n N --explain 2" in err, err


def test_a_table_shows_the_first_thousand_rows(kdd, capsys):
    folder, raw, scores = kdd
    code, out, err = run_cli(capsys, "top", folder / "kdd.scores.h5", "-n", "1200", "--format", "table")
    assert code == 0, err
    assert "the first 1,000 rows: --format csv or -o FILE for all" in out
    assert "1200 of 5000 rows" in out and "│ 1000 " in out and "│ 1001 " not in out


def test_rows_are_written_as_the_csv_and_json_modules_write_them():
    """rows_text builds the text of numbers with NumPy: the same text, for every magnitude."""
    from functools import partial

    from deepuad.inputs.decoding import Plain, python_values, round_significant
    from deepuad.stages import rows_text

    rng = np.random.default_rng(5)
    n = 4000
    magnitudes = 10.0 ** rng.integers(-30, 30, n) * rng.choice([-1, 1], n)
    values = np.concatenate([rng.normal(0, 1, n), rng.random(n) * magnitudes, np.round(rng.normal(0, 1e5, n)),
                             [0.0, -0.0, 1e16, 1e15, 1e-4, 1e-5, 1.5e-5, 2.0**53, 1e300, 5e-324, 123.45, -7.0]])
    columns = [np.arange(len(values)) - 10**12, round_significant(values, 9), Plain.of(values),
               rng.choice(["a", "b,c", 'q"t', "x\ny", "ü", "", None], len(values)).tolist(),
               np.full(len(values), 2**63 - 1, dtype=np.int64)]
    rows = list(zip(*map(python_values, columns)))
    assert any(type(v) is int for v in python_values(columns[2])) and any(type(v) is float for v in python_values(columns[2]))
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerows(rows)
    assert rows_text.csv_text(columns, len(values)) == expected.getvalue()
    names = ["rank", "score", "x", "text", "big"]
    dumps = partial(json.dumps, allow_nan=False, ensure_ascii=False)
    assert rows_text.json_text(names, columns, len(values), False, dumps, "\n") == "".join(
        dumps(dict(zip(names, row))) + "\n" for row in rows)
