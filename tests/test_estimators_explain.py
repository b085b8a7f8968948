"""deepuad explain (and top --explain) on data where the anomalous column is known.

Normal rows lie on a curve: a = t, b = 2t, c = 1 - t, d = t^2 and cat = low/high by t. Planted
anomalies break exactly one column: c (a number off the curve) or cat (the other category)."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from deepuad.estimators.params import DEFAULTS

from helpers import cli, make_media, run_cli

BROKEN_C = [600, 601, 602, 603, 604, 605]
FLIPPED_CAT = [606, 607, 608, 609, 610, 611]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(3)
    t = rng.uniform(0, 1, 612)
    t[BROKEN_C] = [0.2, 0.35, 0.5, 0.65, 0.8, 0.3]
    table = pd.DataFrame({"a": t, "b": 2 * t, "c": 1 - t, "d": t**2, "cat": np.where(t < 0.5, "low", "high")})
    table.loc[BROKEN_C, "c"] = 1 - t[BROKEN_C] + np.array([0.8, -0.8, 0.9, -0.9, 0.7, -0.7])
    table.loc[FLIPPED_CAT, "cat"] = np.where(t[FLIPPED_CAT] < 0.5, "high", "low")
    table = table.round(5)
    table.to_csv(folder / "planted.csv", index=False)
    code, _, err = cli("--quiet", "run", folder / "planted.csv", "-o", folder / "out", "--epochs", "200", "--r", "50", "--lr", "0.005",
                      "--layers", "8,1", "--seed", "0")  # one code unit: t; cat must follow from it
    assert code == 0, err
    return folder, table, t


def explained(capsys, folder, *args):
    code, out, err = run_cli(capsys, "explain", folder / "out" / "model.h5", folder / "out" / "features.h5", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_the_broken_column_comes_first_with_the_value_the_curve_expects(planted, capsys):
    folder, table, t = planted
    result = explained(capsys, folder, "--rows", ",".join(map(str, BROKEN_C + FLIPPED_CAT)), "-k", "3")
    assert result["score"] == DEFAULTS["score"] and "expected value" in result["method"]
    by_id = {row["id"]: row for row in result["rows"]}
    assert sorted(by_id) == BROKEN_C + FLIPPED_CAT
    for row in BROKEN_C:
        first = by_id[row]["columns"][0]
        assert first["column"] == "c", by_id[row]
        assert first["share"] > 0.5
        assert first["value"] == pytest.approx(table.loc[row, "c"], abs=1e-4)
        assert abs(first["expected"] - (1 - t[row])) < abs(first["value"] - (1 - t[row])) / 3  # near the curve
    for row in FLIPPED_CAT:
        first = by_id[row]["columns"][0]
        assert first["column"] == "cat", by_id[row]
        assert first["value"] == table.loc[row, "cat"]
    # the category the model expects instead is the right one for most (a one-unit code extrapolates near cat's edge)
    right = [by_id[row]["columns"][0]["expected"] == ("low" if t[row] < 0.5 else "high") for row in FLIPPED_CAT]
    assert sum(right) >= 3, right


def as_score(detector, z_values):
    """The score from its parts as explain reports them (robust z-scores, or the value itself)."""
    from deepuad.estimators.parts import combine

    n = len(detector.score_parts_)
    return float(combine(z_values, detector.score_parts_, np.zeros(n), np.ones(n), detector.score_weights_)[0])


def test_each_contribution_is_the_fall_in_the_whole_score(planted, capsys):
    from deepuad.stages.answers import read_rows
    from deepuad.estimators.explain import expected_rows
    from deepuad import DeepUAD

    folder, table, t = planted
    detector = DeepUAD.load(folder / "out" / "model.h5")
    rows = np.array([3, 17, 600, 607])
    data = read_rows(folder / "out" / "features.h5", rows)
    X, decoder = data["X"], data["decoder"]
    result = explained(capsys, folder, "--rows", "3,17,600,607", "-k", "5")  # 5 = every original column
    expected = expected_rows(detector, X, decoder)
    groups = {name: (first, stop) for name, first, stop in decoder.groups}
    for entry, x, x_expected in zip(result["rows"], X, expected):
        for column in entry["columns"]:
            first, stop = groups[column["column"]]
            replaced = x.copy()
            replaced[first:stop] = x_expected[first:stop]
            before, after = detector.decision_function(np.stack([x, replaced]))
            assert column["contribution"] == pytest.approx(before - after, abs=1e-5)
            falls = [np.array([column["parts"][name]]) for name in detector.score_parts_]  # the same fall, part by part
            assert as_score(detector, falls) == pytest.approx(column["contribution"], abs=1e-4)
            if column["value"] == column["expected"]:
                assert column["contribution"] == 0.0
        positive = [c for c in entry["columns"] if c["contribution"] > 0]
        assert entry["total"] == pytest.approx(sum(c["contribution"] for c in positive))
        assert sum(c["share"] for c in positive) == pytest.approx(1.0 if positive else 0.0)
        parts = [np.array([entry["parts"][name]]) for name in detector.score_parts_]
        assert as_score(detector, parts) == pytest.approx(entry["score"], abs=1e-4)  # the parts make the score
    with h5py.File(folder / "out" / "scores.h5") as f:
        stored = f["score"][()][rows]
    assert [e["score"] for e in result["rows"]] == pytest.approx(stored, abs=1e-5)
    # a number is expected from the kept rows: inside their range
    numeric = [first for name, first, _ in decoder.groups if name not in decoder.vocabularies]
    low, high = detector.reference_[:, numeric].min(0), detector.reference_[:, numeric].max(0)
    assert ((expected[:, numeric] >= low) & (expected[:, numeric] <= high)).all()
    # a model that keeps no rows (the paper's cosine score): the reconstruction, its category one-hot
    del detector.scorer_.reference_
    snapped = expected_rows(detector, X, decoder)
    np.testing.assert_array_equal(snapped[:, numeric], detector.reconstruct(X)[:, numeric])
    first, stop = groups["cat"]
    assert sorted(np.unique(snapped[:, first:stop])) == [0.0, 1.0] and (snapped[:, first:stop].sum(1) == 1).all()


def test_top_explain_and_plots(planted, capsys, tmp_path):
    folder, table, t = planted
    code, out, err = run_cli(capsys, "top", folder / "out" / "scores.h5", "-n", "12", "--explain", "2", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    planted_ids = set(BROKEN_C + FLIPPED_CAT)
    assert len(planted_ids & {r["id"] for r in rows}) >= 9  # the planted rows rank on top
    for row in rows:
        if row["id"] in BROKEN_C:
            assert row["why"][0]["column"] == "c"  # the announced column, structured in JSON
        if row["id"] in FLIPPED_CAT:
            assert row["why"][0]["column"] == "cat"
    result = explained(capsys, folder, "--top", "3", "--plots", tmp_path / "why")
    assert len(result["plots"]) == 3 and [r["rank"] for r in result["rows"]] == [1, 2, 3]
    for path in result["plots"]:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with_scores = explained(capsys, folder, "--top", "3", "--scores", folder / "out" / "scores.h5")
    assert [r["id"] for r in with_scores["rows"]] == [r["id"] for r in result["rows"]]
    code, _, err = run_cli(capsys, "explain", folder / "out" / "model.h5", folder / "out" / "features.h5", "--rows", "99999")
    assert code == 2 and "99999" in err and err.count("\n") == 1


def test_explain_on_arrays_images_and_video_segments(tmp_path, capsys):
    rng = np.random.default_rng(2)
    make_media(tmp_path, rng, images_per_class=20, segments=20)
    np.savez(tmp_path / "arr.npz", X=rng.normal(5, 2, size=(40, 3)))  # a NumPy array: ids are row numbers
    for source, options, wanted in (("imgs", ["--size", "4x4", "--grayscale"], "dogs/3.png"), ("vid", [], "Robbery001_x264#4"),
                                    ("arr.npz", [], "7")):
        f, c, m = (tmp_path / f"{source}.{kind}.h5" for kind in ("features", "clusters", "model"))
        for args in (["extract", tmp_path / source, "-o", f, *options], ["cluster", f, "-o", c, "--clusters", "3"],
                     ["train", f, c, "-o", m, "--epochs", "4", "--r", "2"]):
            code, _, err = run_cli(capsys, "--quiet", *args)
            assert code == 0, (args, err)
        code, out, err = run_cli(capsys, "explain", m, f, "--rows", wanted, "-k", "3", "--json")
        assert code == 0, err
        row = json.loads(out)["rows"][0]
        assert str(row["id"]) == wanted and len(row["columns"]) == 3
        assert all(c["column"].startswith("x") and isinstance(c["expected"], (int, float)) for c in row["columns"])


def test_the_table_names_each_standardised_part_by_its_z_score_and_the_range_by_what_it_adds(planted, capsys):
    folder, _, _ = planted
    code, out, err = run_cli(capsys, "explain", folder / "out" / "model.h5", folder / "out" / "features.h5", "--top", "1")
    assert code == 0, err
    title = next(line for line in out.splitlines() if line.startswith("#1 id "))
    for part in ("knn", "l2", "tails"):
        assert f"{part} z " in title, title
    assert "range +" in title and "range z" not in title, title
    as_json = explained(capsys, folder, "--top", "1")["rows"][0]["parts"]
    assert f"range +{as_json['range']:.2f}" in title
