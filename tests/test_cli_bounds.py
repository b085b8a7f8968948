"""Work bounded by what is asked for and by what a file holds: options that size memory are
bounded where they are parsed, torchrun's environment variables are validated the same way,
and compressed inputs that inflate far beyond their size are refused before they are decoded."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import TRAIN, clean_error, run_cli, run_in_child
from deepuad.estimators.params import LIMITS, MAX_WORLD_SIZE


def usage_error(capsys, args, *words) -> str:
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and clean_error(err), (args, code, err)
    for word in words:
        assert word in err, err
    return err


# =========================================================================== options
def test_options_that_size_memory_are_bounded_naming_the_limit(tmp_path, capsys, built):
    f, c, m = built["features"], built["clusters"], built["model"]
    out = tmp_path / "out.h5"
    train = ["train", f, c, "-o", out]
    cases = [
        (train + ["--layers", "100000000,10"], f"{LIMITS['layer_width']:,}"),
        (train + ["--layers", ",".join(["4"] * 65)], f"at most {LIMITS['layers']} widths"),
        (train + ["--layers", "60000,60000"], f"{LIMITS['hidden_weights']:,}"),
        (train + ["--batch-size", str(LIMITS["batch_rows"] + 1)], f"{LIMITS['batch_rows']:,}"),
        (train + ["--reselect-clusters", str(LIMITS["clusters"] + 1)], str(LIMITS["clusters"])),
        (train + ["--epochs", "100000", "--r", "10"], f"at most {LIMITS['reselections']:,}"),
        (["cluster", f, "-o", out, "--method", "distribution", "--neighbors", "100000000"], str(LIMITS["neighbors"])),
        (["cluster", f, "-o", out, "--method", "distribution", "--anchors", str(LIMITS["anchors"] + 1)], str(LIMITS["anchors"])),
        (["cluster", f, "-o", out, "--clusters", str(LIMITS["clusters"] + 1)], str(LIMITS["clusters"])),
        (["score", m, f, "-o", out, "--batch-rows", str(LIMITS["batch_rows"] + 1)], str(LIMITS["batch_rows"])),
        (["extract", built["table"], "-o", out, "--size", "100000x100000"], str(LIMITS["image_side"])),
    ]
    for args, limit in cases:
        usage_error(capsys, args, limit)
    assert not out.exists()


def test_options_at_their_limit_are_accepted(capsys):
    from deepuad.cli.options import _batch_size, _layers

    assert _layers(f"{LIMITS['layer_width']},2") == (LIMITS["layer_width"], 2)
    assert _batch_size(str(LIMITS["batch_rows"])) == LIMITS["batch_rows"]


# =========================================================================== torchrun's environment
@pytest.mark.parametrize("environment,name", [
    ({"RANK": "abc"}, "RANK"),
    ({"WORLD_SIZE": "x"}, "WORLD_SIZE"),
    ({"WORLD_SIZE": "2", "RANK": "-1"}, "RANK"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2"),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "5", "LOCAL_WORLD_SIZE": "2"}, "LOCAL_RANK=5"),
    ({"WORLD_SIZE": str(MAX_WORLD_SIZE + 1)}, "WORLD_SIZE"),
    ({"LOCAL_WORLD_SIZE": "99999999999999999999"}, "LOCAL_WORLD_SIZE"),
])
def test_torchrun_variables_are_validated_like_options(tmp_path, capsys, monkeypatch, built, environment, name):
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    usage_error(capsys, ["train", built["features"], built["clusters"], "-o", tmp_path / "m.h5", *TRAIN], name)
    assert not (tmp_path / "m.h5").exists()


def test_a_valid_single_process_environment_still_trains(tmp_path, capsys, monkeypatch, built):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    code, _, err = run_cli(capsys, "train", built["features"], built["clusters"], "-o", tmp_path / "m.h5", *TRAIN)
    assert code == 0, err


# =========================================================================== decompression bombs
def _npz_bomb(path: Path, inflated: int) -> Path:
    """An .npz whose X.npy inflates from about inflated / 1000 bytes to ``inflated`` (zeros)."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0))
    header["shape"] = (inflated // 8,)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("X.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            block = bytes(16 << 20)
            for _ in range(inflated // len(block)):
                member.write(block)
    return path


def test_an_npz_that_inflates_a_thousandfold_is_refused_before_decoding(tmp_path):
    bomb = _npz_bomb(tmp_path / "bomb.npz", 256 << 20)
    assert bomb.stat().st_size < 1 << 20
    [(code, err, peak)] = run_in_child(tmp_path, [["extract", bomb, "-o", tmp_path / "b.features.h5"]])
    assert code == 3 and clean_error(err) and "zip bomb" in err and str(bomb) in err, err
    assert peak < 100, peak  # MB over the child's baseline: the 256 MiB array was never allocated


def test_a_parquet_dictionary_bomb_is_refused_before_decoding(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 1_000_000
    for name, value in (("long", "y" * 5000), ("many", "y" * 4000)):  # one value too long; or too much text at once
        column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)), pa.array([value]))
        pq.write_table(pa.table({"x": pa.array(np.arange(rows, dtype=np.float64)), "c": column}), tmp_path / f"{name}.parquet",
                       compression="zstd", row_group_size=rows)
        assert (tmp_path / f"{name}.parquet").stat().st_size < 4 << 20
    results = run_in_child(tmp_path, [["extract", tmp_path / f"{name}.parquet", "-o", tmp_path / "p.features.h5"]
                                     for name in ("long", "many")])
    (long_code, long_err, _), (many_code, many_err, peak) = results
    assert long_code == 4 and clean_error(long_err) and "5,000-character value" in long_err, long_err
    assert many_code == 3 and clean_error(many_err) and "MiB of text" in many_err, many_err
    assert peak < 300, results  # MB: the 4 GB of text were never decoded (2.6 GB before)
    assert not (tmp_path / "p.features.h5").exists()


def test_a_parquet_column_that_inflates_beyond_its_ratio_is_refused_from_the_footer(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = pa.array(["z" * 1000] * 100_000)  # 100 MB of text, plain-encoded: zstd keeps a few kB of it
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"c": text}), path, compression="zstd", use_dictionary=False, row_group_size=100_000)
    code, _, err = run_cli(capsys, "extract", path, "-o", tmp_path / "p.features.h5")
    assert code == 3 and clean_error(err) and "declares" in err and "MiB" in err, err
