"""extract from Parquet and Arrow: the same features file as the same data in CSV."""

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from helpers import KDD_SAMPLE as KDD, run_cli

OPTIONS = ["--label-column", "label", "--anomaly-values", "normal.", "--chunk-rows", "900"]


@pytest.fixture(scope="module")
def kdd_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pq")
    raw = pd.read_csv(KDD, keep_default_na=False)
    table = pa.Table.from_pandas(raw, preserve_index=False)
    # one text column as a dictionary (pandas' category), the others as plain strings
    table = table.set_column(table.schema.get_field_index("protocol_type"), "protocol_type",
                             table.column("protocol_type").dictionary_encode())
    pq.write_table(table, folder / "kdd.parquet", row_group_size=700)
    feather.write_feather(table, folder / "kdd.arrow", chunksize=1100)
    raw.iloc[:1000].to_csv(folder / "day.csv", index=False)
    pq.write_table(table.slice(0, 1000), folder / "day.parquet", row_group_size=300)
    return folder, raw


def fingerprint(path):
    with h5py.File(path) as f:
        return f.attrs["fingerprint"], f["X"][()], f["feature_names"][()].tolist()


def extract(capsys, source, output, *options):
    code, _, err = run_cli(capsys, "--quiet", "extract", source, "-o", output, *options)
    assert code == 0, err
    return fingerprint(output)


def test_parquet_and_arrow_give_the_features_file_of_the_csv(kdd_files, capsys):
    folder, raw = kdd_files
    from_csv = extract(capsys, KDD, folder / "csv.features.h5", *OPTIONS)
    for source in ("kdd.parquet", "kdd.arrow"):
        got = extract(capsys, folder / source, folder / f"{source}.features.h5", *OPTIONS)
        assert got[0] == from_csv[0], source  # every dataset: X, y, ids, names, encoding
    width = 38 + sum(raw[c].nunique() for c in ("protocol_type", "service", "flag"))  # 38 numbers, 3 texts one-hot
    assert from_csv[1].shape == (len(raw), width)
    # --like across formats: today's Parquet encoded like the CSV reference, and vice versa
    like_csv = extract(capsys, folder / "day.csv", folder / "day1.h5", "--like", folder / "kdd.parquet.features.h5")
    like_pq = extract(capsys, folder / "day.parquet", folder / "day2.h5", "--like", folder / "csv.features.h5")
    assert like_csv[0] == like_pq[0]
    np.testing.assert_array_equal(like_pq[1], from_csv[1][:1000])


def test_chunks_are_bounded_and_complete(kdd_files):
    from deepuad.inputs.parquet import read_arrow_chunks

    folder, raw = kdd_files
    sizes = [len(frame) for frame in read_arrow_chunks(folder / "kdd.parquet", chunk_rows=256)]
    assert max(sizes) <= 256 and sum(sizes) == len(raw)
    frames = list(read_arrow_chunks(folder / "kdd.arrow", chunk_rows=500, drop=("label",)))
    assert max(map(len, frames)) <= 500 and sum(map(len, frames)) == len(raw)
    assert frames[1].index[0] == len(frames[0])  # data row numbers, for error messages


def test_timestamps_are_refused_or_dropped_and_bad_files_are_input_errors(tmp_path, capsys):
    table = pa.table({"a": [1.0, 2.0, 3.0, 4.0], "kind": ["x", "y", "x", None],
                      "when": pa.array(pd.date_range("2026-01-01", periods=4, freq="h"))})
    pq.write_table(table, tmp_path / "t.parquet")
    code, _, err = run_cli(capsys, "extract", tmp_path / "t.parquet", "-o", tmp_path / "t.h5")
    assert code == 4 and "'when'" in err and "--drop when" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "t.h5").exists()
    got = extract(capsys, tmp_path / "t.parquet", tmp_path / "t.h5", "--drop", "when", "--missing", "fill")
    assert got[2][0] == b"a" and b"kind=x" in got[2] and not any(b"when" in name for name in got[2])
    # a missing text value (null) is encoded as an empty CSV cell is: a category of its own
    assert b"kind=(missing)" in got[2]
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "kind": ["x", "y", "x", ""]}).to_csv(tmp_path / "t.csv", index=False)
    from_csv = extract(capsys, tmp_path / "t.csv", tmp_path / "c.h5", "--missing", "fill")
    assert from_csv[2] == got[2]
    np.testing.assert_array_equal(from_csv[1], got[1])
    data = (tmp_path / "t.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2] + b"PAR1")
    code, _, err = run_cli(capsys, "extract", tmp_path / "cut.parquet", "-o", tmp_path / "cut.h5")
    assert code == 3 and "cut.parquet" in err and "Parquet" in err and err.strip().count("\n") == 0
    pq.write_table(pa.table({"a": [1.0, None]}), tmp_path / "nan.parquet")
    code, _, err = run_cli(capsys, "extract", tmp_path / "nan.parquet", "-o", tmp_path / "nan.h5")
    assert code == 4 and "'a'" in err
