"""extract --missing (gaps refused, left out or filled, the same way again under --like),
--id-column (columns that identify rows, carried to the scores, top and explain), the input row
numbers that survive a dropped row, and the --like options that would otherwise be ignored."""

import csv
import io
import json

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import cli, run_cli

# 10 rows; gaps: cpu at rows 2 and 5, kind at row 7 (rows counted from 0, as ids are)
METRICS = """ts,host,cpu,mem,kind
2026-12-01T00:00,0017,1,10,a
2026-12-01T00:05,0018,2,11,b
2026-12-01T00:10,0017,,12,a
2026-12-01T00:15,0018,4,13,b
2026-12-01T00:20,0017,5,14,a
2026-12-01T00:25,0018,,15,b
2026-12-01T00:30,0017,7,16,a
2026-12-01T00:35,0018,8,17,
2026-12-01T00:40,0017,9,18,a
2026-12-01T00:45,0018,100,19,b
"""
GAP_ROWS = [2, 5, 7]


def features(path) -> dict:
    with h5py.File(path) as f:
        out = {name: f[name][()] for name in ("X", "ids", "feature_names", "dropped_rows") if name in f}
        out["encoding"] = json.loads(f["encoding"][()])
        out["attrs"] = dict(f.attrs)
        out["id_columns"] = {name: [v.decode() for v in f[f"id_columns/{i}"][()]]
                             for i, name in enumerate(json.loads(f.attrs["id_columns"]))} if "id_columns" in f.attrs else {}
    out["feature_names"] = [n.decode() for n in out["feature_names"]]
    return out


def one_line(err: str, what: str) -> bool:
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith(f"deepuad: {what}:")


def extract(capsys, *args):
    code, out, err = run_cli(capsys, "extract", *args, "--json")
    assert code == 0, err
    return json.loads(out), err


@pytest.fixture
def metrics(tmp_path):
    (tmp_path / "m.csv").write_text(METRICS)
    return tmp_path / "m.csv"


def test_a_gap_is_refused_by_default_with_a_hint_that_names_missing(tmp_path, capsys):
    (tmp_path / "num.csv").write_text("a,b\n1,2\n3,\n")
    (tmp_path / "text.csv").write_text("a,kind\n1,x\n2,\n")
    np.save(tmp_path / "x.npy", np.array([[1.0, 2.0], [np.nan, 3.0]]))
    for name, column in (("num.csv", "'b'"), ("text.csv", "'kind'"), ("x.npy", "row 1")):
        code, out, err = run_cli(capsys, "extract", tmp_path / name, "-o", tmp_path / "out.h5")
        assert code == 4 and one_line(err, "error"), err
        assert "--missing drop" in err and "--missing fill" in err and column in err, err
        assert "--categorical" not in err  # the wrong fix for a gap
        assert not (tmp_path / "out.h5").exists()
    # a value that is there but no number is no gap: --missing does not hide it
    (tmp_path / "inf.csv").write_text("a,b\n1,2\n3,inf\n")
    code, _, err = run_cli(capsys, "extract", tmp_path / "inf.csv", "--missing", "fill", "-o", tmp_path / "out.h5")
    assert code == 4 and "'inf'" in err and not (tmp_path / "out.h5").exists()
    code, _, err = run_cli(capsys, "extract", tmp_path / "num.csv", "--missing", "guess")
    assert code == 2 and "--missing must be one of error, drop, fill" in err
    code, _, err = run_cli(capsys, "extract", tmp_path / "x.npy", "--id-column", "a")
    assert code == 2 and "--id-column applies to tables only" in err
    (tmp_path / "gaps.csv").write_text("a,b\n1,\n,2\n")
    code, _, err = run_cli(capsys, "extract", tmp_path / "gaps.csv", "--missing", "drop", "-o", tmp_path / "out.h5")
    assert code == 4 and "every one of its 2 row(s) has a gap" in err and not (tmp_path / "out.h5").exists()


def test_drop_leaves_out_rows_with_gaps_and_lists_them_by_input_row(metrics, tmp_path, capsys):
    summary, _ = extract(capsys, metrics, "--missing", "drop", "--id-column", "ts,host", "-o", tmp_path / "d.h5")
    assert summary["rows"] == 7 and summary["rows_dropped"] == 3 and summary["dropped_rows"] == GAP_ROWS
    got = features(tmp_path / "d.h5")
    assert got["dropped_rows"].tolist() == GAP_ROWS
    kept = [row for row in range(10) if row not in GAP_ROWS]
    assert got["ids"].tolist() == kept  # a dropped row does not shift the numbers of the rows after it
    assert got["id_columns"]["ts"] == [f"2026-12-01T00:{5 * row:02d}" for row in kept]
    # the same features as the gap-free rows alone: the encoding is fitted on the kept rows only
    lines = METRICS.splitlines()
    (tmp_path / "clean.csv").write_text("\n".join([lines[0]] + [lines[1 + row] for row in kept]) + "\n")
    extract(capsys, tmp_path / "clean.csv", "--id-column", "ts,host", "-o", tmp_path / "c.h5")
    clean = features(tmp_path / "c.h5")
    np.testing.assert_array_equal(got["X"], clean["X"])
    assert got["feature_names"] == clean["feature_names"]


def test_fill_uses_the_training_medians_also_for_tomorrows_file(metrics, tmp_path, capsys):
    summary, _ = extract(capsys, metrics, "--missing", "fill", "--scale", "none", "--id-column", "ts,host",
                         "-o", tmp_path / "f.h5")
    assert summary["rows"] == 10 and summary["gaps_filled"] == {"cpu": 2}
    got = features(tmp_path / "f.h5")
    cpu, kind_gap = got["feature_names"].index("cpu"), got["feature_names"].index("kind=(missing)")
    median = float(np.median([1, 2, 4, 5, 7, 8, 9, 100]))  # 6.0, the mean would be 17
    assert got["X"][[2, 5], cpu].tolist() == [median, median]
    assert got["X"][:, kind_gap].tolist() == [float(row == 7) for row in range(10)]  # a text gap: its own category
    assert got["encoding"]["fill"][got["encoding"]["numeric_columns"].index("cpu")] == median
    # tomorrow: a gap filled with the training median, not tomorrow's (which would be 1000)
    (tmp_path / "t.csv").write_text("ts,host,cpu,mem,kind\n2026-12-02T00:00,0017,,10,a\n2026-12-02T00:05,0018,1000,10,b\n")
    summary, _ = extract(capsys, tmp_path / "t.csv", "--like", tmp_path / "f.h5", "-o", tmp_path / "t.h5")
    assert summary["gaps_filled"] == {"cpu": 1}
    tomorrow = features(tmp_path / "t.h5")
    assert tomorrow["X"][0, cpu] == median and tomorrow["id_columns"]["host"] == ["0017", "0018"]
    # the scaled encoding holds its gaps the same way: min-max over the filled values
    extract(capsys, metrics, "--missing", "fill", "--drop", "ts,host", "-o", tmp_path / "s.h5")
    scaled = features(tmp_path / "s.h5")
    assert scaled["X"][2, scaled["feature_names"].index("cpu")] == pytest.approx((median - 1) / 99)


def test_parquet_nulls_and_timestamps_are_handled_as_the_csv(metrics, tmp_path, capsys):
    frame = pd.read_csv(metrics, dtype={"host": str})
    frame["ts"] = pd.to_datetime(frame["ts"])  # a real timestamp column: refused as a feature, welcome as an id
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "m.parquet")
    for missing in ("drop", "fill"):
        from_pq, _ = extract(capsys, tmp_path / "m.parquet", "--missing", missing, "--id-column", "ts",
                             "--id-column", "host", "-o", tmp_path / f"p{missing}.h5")
        from_csv, _ = extract(capsys, metrics, "--missing", missing, "--id-column", "ts", "--id-column", "host",
                              "-o", tmp_path / f"c{missing}.h5")
        assert {k: v for k, v in from_pq.items() if k != "output"} == {k: v for k, v in from_csv.items() if k != "output"}
        pq_file, csv_file = features(tmp_path / f"p{missing}.h5"), features(tmp_path / f"c{missing}.h5")
        np.testing.assert_array_equal(pq_file["X"], csv_file["X"])
        assert pq_file["id_columns"]["host"] == csv_file["id_columns"]["host"]
        assert pq_file["id_columns"]["ts"][0] == "2026-12-01 00:00:00"
    code, _, err = run_cli(capsys, "extract", tmp_path / "m.parquet", "--missing", "fill", "-o", tmp_path / "x.h5")
    assert code == 4 and "--id-column ts" in err  # the timestamp as a feature: refused, naming the way out


def test_numpy_nan_is_a_gap(tmp_path, capsys):
    X = np.arange(12, dtype=np.float64).reshape(6, 2)
    X[1, 0] = X[4, 1] = np.nan
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0, 0, 1, 0]))
    summary, _ = extract(capsys, tmp_path / "d.npz", "--missing", "drop", "--scale", "none", "-o", tmp_path / "d.h5")
    assert summary["dropped_rows"] == [1, 4] and summary["rows"] == 4
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["ids"][()].tolist() == [0, 2, 3, 5] and f["y"][()].tolist() == [0, 0, 0, 0]
        np.testing.assert_array_equal(f["X"][()], X[[0, 2, 3, 5]])
    summary, _ = extract(capsys, tmp_path / "d.npz", "--missing", "fill", "--scale", "none", "-o", tmp_path / "f.h5")
    assert summary["gaps_filled"] == {"x0": 1, "x1": 1}
    with h5py.File(tmp_path / "f.h5") as f:
        assert f["X"][1, 0] == np.nanmedian(X[:, 0]) and f["X"][4, 1] == np.nanmedian(X[:, 1])


@pytest.mark.parametrize("option", [["--scale", "standard"], ["--categorical", "mem"], ["--drop", "mem"],
                                    ["--missing", "drop"], ["--id-column", "host"], ["--label-column", "kind"]])
def test_like_refuses_an_option_that_disagrees_with_the_features_file(metrics, tmp_path, capsys, option):
    extract(capsys, metrics, "--missing", "fill", "--id-column", "ts", "-o", tmp_path / "ref.h5")
    code, _, err = run_cli(capsys, "extract", metrics, "--like", tmp_path / "ref.h5", *option, "-o", tmp_path / "new.h5")
    assert code == 2 and one_line(err, "error") and option[0] in err and "--like" in err, err
    assert not (tmp_path / "new.h5").exists()
    # the file's own choices, repeated, are no conflict
    extract(capsys, metrics, "--like", tmp_path / "ref.h5", "--missing", "fill", "--id-column", "ts", "--scale", "minmax",
            "-o", tmp_path / "same.h5")


def test_unseen_categories_warn_on_stderr_unless_quiet(metrics, tmp_path, capsys):
    extract(capsys, metrics, "--missing", "fill", "--id-column", "ts,host", "-o", tmp_path / "ref.h5")
    (tmp_path / "t.csv").write_text("ts,host,cpu,mem,kind\nx,y,1,2,zz\nx,y,1,2,zz\nx,y,1,2,a\n")
    summary, err = extract(capsys, tmp_path / "t.csv", "--like", tmp_path / "ref.h5", "-o", tmp_path / "t.h5")
    assert summary["unseen_categories"] == {"kind": 2}
    assert one_line(err, "warning") and "'kind'" in err and "2 row(s)" in err
    code, out, err = run_cli(capsys, "--quiet", "extract", tmp_path / "t.csv", "--like", tmp_path / "ref.h5", "-o",
                             tmp_path / "q.h5", "--json")
    assert code == 0 and err == "" and json.loads(out)["unseen_categories"] == {"kind": 2}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A small server-metrics table with gaps, extracted with --missing drop and two id
    columns, trained briefly and scored."""
    folder = tmp_path_factory.mktemp("ids")
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"ts": [f"2026-12-01T{i // 12:02d}:{5 * (i % 12):02d}" for i in range(n)],
                          "host": [f"web{i % 4}" for i in range(n)], "cpu": rng.normal(30, 2, n), "lat": rng.normal(150, 5, n)})
    frame.loc[[10, 40], "cpu"] = np.nan
    frame.loc[[77, 101], "lat"] = 5000.0  # planted
    frame.to_csv(folder / "m.csv", index=False)
    for args in (("extract", folder / "m.csv", "--missing", "drop", "--id-column", "ts,host", "-o", folder / "f.h5"),
                 ("cluster", folder / "f.h5", "-o", folder / "c.h5", "--clusters", "4"),
                 ("train", folder / "f.h5", folder / "c.h5", "-o", folder / "m.h5", "--epochs", "4", "--r", "2"),
                 ("score", folder / "m.h5", folder / "f.h5", "-o", folder / "s.h5")):
        code, _, err = cli("--quiet", *args)
        assert code == 0, (args, err)
    return folder, frame


def test_scores_carry_the_input_row_numbers_and_id_columns(scored):
    folder, frame = scored
    with h5py.File(folder / "s.h5") as f:
        ids = f["ids"][()]
        assert json.loads(f.attrs["id_columns"]) == ["ts", "host"]
        hosts = [v.decode() for v in f["id_columns/1"][()]]
    kept = [row for row in range(len(frame)) if row not in (10, 40)]
    assert ids.tolist() == kept and hosts == frame["host"][kept].tolist()


def test_top_shows_ids_in_every_format(scored, capsys):
    folder, frame = scored
    code, out, err = run_cli(capsys, "top", folder / "s.h5", "-n", "8", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[:4] == ["rank", "id", "ts", "host"]
    for row in rows:  # each id column belongs to the row's input row number, the dropped rows notwithstanding
        source = frame.iloc[int(row["id"])]
        assert (row["ts"], row["host"]) == (source["ts"], source["host"])
        assert float(row["lat"]) == pytest.approx(source["lat"], rel=1e-5)
    code, out, _ = run_cli(capsys, "top", folder / "s.h5", "-n", "3", "--format", "jsonl")
    first = json.loads(out.splitlines()[0])
    assert first["ts"] == rows[0]["ts"] and first["id"] == int(rows[0]["id"])
    code, _, err = run_cli(capsys, "top", folder / "s.h5", "-n", "3", "-o", folder / "top.parquet")
    assert code == 0, err
    table = pq.read_table(folder / "top.parquet").to_pandas()
    assert table["host"].tolist() == [r["host"] for r in rows[:3]] and table["id"].tolist() == [int(r["id"]) for r in rows[:3]]


def test_explain_shows_the_id_columns(scored, capsys):
    folder, frame = scored
    code, out, err = run_cli(capsys, "explain", folder / "m.h5", folder / "f.h5", "--rows", "77,101", "--json")
    assert code == 0, err
    entries = json.loads(out)["rows"]
    assert [e["id_columns"] for e in entries] == [{"ts": frame["ts"][r], "host": frame["host"][r]} for r in (77, 101)]
    code, out, err = run_cli(capsys, "explain", folder / "m.h5", folder / "f.h5", "--rows", "77")
    assert code == 0 and f"host {frame['host'][77]}" in out and frame["ts"][77] in out


def test_a_features_file_whose_id_columns_do_not_match_is_refused(scored, tmp_path, capsys):
    folder, _ = scored
    broken = tmp_path / "f.h5"
    broken.write_bytes((folder / "f.h5").read_bytes())
    with h5py.File(broken, "a") as f:
        f.attrs["id_columns"] = json.dumps(["ts", "host", "rack"])  # a third name, no third dataset
    code, _, err = run_cli(capsys, "top", folder / "s.h5", "--features", broken, "-n", "3", "--format", "csv")
    assert code == 3 and one_line(err, "error") and "'rack'" in err and str(broken) in err


def test_files_without_the_new_fields_still_read(tmp_path, capsys):
    """A features file from before --missing and --id-column: no id_columns, no dropped_rows,
    no fill in its encoding; --like and the readers treat it as --missing error."""
    (tmp_path / "a.csv").write_text("a,b\n1,2\n3,4\n")
    extract(capsys, tmp_path / "a.csv", "-o", tmp_path / "a.h5")
    got = features(tmp_path / "a.h5")
    assert "dropped_rows" not in got and got["id_columns"] == {} and "missing" not in got["encoding"]["params"]
    (tmp_path / "b.csv").write_text("a,b\n1,\n")
    code, _, err = run_cli(capsys, "extract", tmp_path / "b.csv", "--like", tmp_path / "a.h5", "-o", tmp_path / "b.h5")
    assert code == 4 and "--missing" in err
