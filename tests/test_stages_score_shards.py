"""Sharded scoring: `score --shard I/N` on each box, then `merge-scores`, must give exactly the file an
unsharded `score` writes (same bits in score, is_anomaly and y; same threshold, metrics, inputs and
fingerprint), and every way of merging the wrong files must fail cleanly."""

import json
import random

import h5py
import numpy as np
import pytest

from helpers import clean_error, cli, make_table, run_cli
from deepuad import artifacts as art

BATCH = 50  # 440 rows -> 9 scoring batches, the last one short
TRAIN = ["--epochs", "3", "--r", "1", "--layers", "6,3", "--reselect-clusters", "3", "--batch-size", "32", "--lr", "0.01",
         "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """features (with labels), two models trained on them, and the unsharded scores of the first."""
    folder = tmp_path_factory.mktemp("shards")
    table = make_table(folder / "data.csv")
    paths = {name: folder / f"{name}.h5" for name in ("features", "clusters", "model", "other_model", "scores", "scores_default")}
    steps = [
        ("extract", table, "--label-column", "label", "--anomaly-values", "bad", "-o", paths["features"]),
        ("cluster", paths["features"], "--clusters", "4", "-o", paths["clusters"]),
        ("train", paths["features"], paths["clusters"], "-o", paths["model"], *TRAIN),
        ("train", paths["features"], paths["clusters"], "-o", paths["other_model"], "--seed", "1", *TRAIN),
        ("score", paths["model"], paths["features"], "-o", paths["scores"], "--batch-rows", BATCH, "--threads", "1"),
        ("score", paths["model"], paths["features"], "-o", paths["scores_default"], "--threads", "1"),
    ]
    for step in steps:
        code, _, err = cli(*step)
        assert code == 0, (step, err)
    return paths


def score_shards(capsys, built, folder, n, batch_rows=BATCH, model=None, extra=()):
    """Shard files 0..n-1 of the features, in order."""
    shards = []
    for i in range(n):
        out = folder / f"s.scores.shard-{i}-of-{n}.h5"
        code, _, err = run_cli(capsys, "score", model or built["model"], built["features"], "--shard", f"{i}/{n}",
                               "--batch-rows", batch_rows, "--threads", "1", "-o", out, *extra)
        assert code == 0, err
        shards.append(out)
    return shards


def content(path):
    """What must agree between a merged and an unsharded scores file."""
    with h5py.File(path, "r") as f:
        return {
            "datasets": {name: f[name][()] for name in ("score", "is_anomaly", "y")},
            "dtypes": {name: f[name].dtype for name in ("score", "is_anomaly", "y")},
            "threshold": float(f.attrs["threshold"]), "contamination": float(f.attrs["contamination"]),
            "metrics": json.loads(f.attrs["metrics"]), "fingerprint": f.attrs["fingerprint"],
            "inputs": {role: source["fingerprint"] for role, source in json.loads(f.attrs["inputs"]).items()},
            "kind": f.attrs["deepuad_kind"],
        }


def assert_same_scores(merged, reference):
    a, b = content(merged), content(reference)
    for name in ("score", "is_anomaly", "y"):
        assert a["dtypes"][name] == b["dtypes"][name], name
        assert np.array_equal(a["datasets"][name], b["datasets"][name]), name  # bit for bit, not approximately
    assert a["threshold"] == b["threshold"] and a["metrics"] == b["metrics"]
    assert a["contamination"] == b["contamination"] or (np.isnan(a["contamination"]) and np.isnan(b["contamination"]))
    assert a["inputs"] == b["inputs"] and a["kind"] == b["kind"] == "scores"
    assert a["fingerprint"] == b["fingerprint"]  # the content hash covers every dataset


# --------------------------------------------------------------------------- row ranges
def test_shard_rows_cover_every_row_once_on_batch_boundaries():
    for n_rows in (1, 2, 49, 50, 51, 440, 1000, 16384, 16385, 100_003):
        for batch_rows in (1, 7, 50, 16384):
            for count in (1, 2, 3, 4, 7, 12, 100):
                ranges = [art.shard_rows(n_rows, batch_rows, i, count) for i in range(count)]
                assert ranges[0][0] == 0 and ranges[-1][1] == n_rows
                for (_, stop), (start, _) in zip(ranges, ranges[1:]):
                    assert stop == start  # contiguous: no gap, no overlap
                for start, stop in ranges:
                    assert start <= stop and start % batch_rows == 0 and (stop % batch_rows == 0 or stop == n_rows)
                sizes = [-(-(stop - start) // batch_rows) for start, stop in ranges]
                assert max(sizes) - min(sizes) <= 1  # near-equal numbers of batches


# --------------------------------------------------------------------------- merge == unsharded
@pytest.mark.parametrize("n", [1, 2, 3, 12])  # 12 > 9 batches: three shards are empty
def test_merged_shards_equal_the_unsharded_scores(tmp_path, capsys, built, n):
    shards = score_shards(capsys, built, tmp_path, n)
    with h5py.File(shards[-1]) as f:
        assert f.attrs["deepuad_kind"] == "scores_shard" and "is_anomaly" not in f and "threshold" not in f.attrs
    rows = []
    for shard in shards:
        with h5py.File(shard) as f:
            rows.append(f["score"].shape[0])
    assert sum(rows) == 440 and rows.count(0) == (3 if n == 12 else 0)
    order = shards[:]
    random.Random(n).shuffle(order)  # any order on the command line
    code, out, err = run_cli(capsys, "merge-scores", *order, "-o", tmp_path / "merged.h5", "--json")
    assert code == 0, err
    assert_same_scores(tmp_path / "merged.h5", built["scores"])
    summary = json.loads(out)
    assert summary["rows"] == 440 and summary["shards"] == n
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "merged.h5", "--json")  # works on it unchanged
    assert code == 0 and json.loads(out)["rows"] == 440


def test_default_batch_size_and_default_names(tmp_path, capsys, built):
    """One 16384-row batch holds all 440 rows: shard 0 of 2 is empty, shard 1 has everything."""
    features = tmp_path / "day.features.h5"
    features.write_bytes(built["features"].read_bytes())
    for i in range(2):
        code, out, err = run_cli(capsys, "score", built["model"], features, "--shard", f"{i}/2", "--threads", "1", "--json")
        assert code == 0, err
        assert json.loads(out)["output"] == str(tmp_path / f"day.scores.shard-{i}-of-2.h5")
    assert json.loads(out)["rows"] == 440
    code, out, err = run_cli(capsys, "merge-scores", tmp_path / "day.scores.shard-1-of-2.h5", tmp_path / "day.scores.shard-0-of-2.h5")
    assert code == 0, err
    assert_same_scores(tmp_path / "day.scores.h5", built["scores_default"])


def test_merge_options_and_json_match_score(tmp_path, capsys, built):
    shards = score_shards(capsys, built, tmp_path, 3)
    for option in (["--contamination", "0.1"], ["--threshold", "0.45"]):
        reference, merged = tmp_path / "reference.h5", tmp_path / "merged.h5"
        code, out, err = run_cli(capsys, "score", built["model"], built["features"], "--batch-rows", BATCH, "--threads", "1",
                                 "-o", reference, "--json", *option)
        assert code == 0, err
        expected = json.loads(out)
        code, out, err = run_cli(capsys, "merge-scores", *shards, "-o", merged, "--json", *option)
        assert code == 0, err
        assert_same_scores(merged, reference)
        summary = json.loads(out)
        assert summary.pop("shards") == 3 and summary.pop("output") == str(merged)
        expected.pop("output")
        assert summary == expected  # rows, threshold, anomalies_flagged and the metrics, as score prints them


def test_shards_record_the_options_they_were_scored_with(tmp_path, capsys, built):
    """--threshold given to every shard is used by merge-scores without repeating it."""
    shards = score_shards(capsys, built, tmp_path, 2, extra=["--threshold", "0.45"])
    assert run_cli(capsys, "score", built["model"], built["features"], "--batch-rows", BATCH, "--threads", "1",
                   "--threshold", "0.45", "-o", tmp_path / "reference.h5")[0] == 0
    assert run_cli(capsys, "merge-scores", *shards, "-o", tmp_path / "merged.h5")[0] == 0
    assert_same_scores(tmp_path / "merged.h5", tmp_path / "reference.h5")


def test_inspect_a_shard(tmp_path, capsys, built):
    shards = score_shards(capsys, built, tmp_path, 3)
    code, out, err = run_cli(capsys, "inspect", shards[1], "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["kind"] == "scores_shard" and info["params"]["contamination"] is not None
    assert info["summary"]["shard"] == "1/3" and info["summary"]["rows_total"] == 440
    assert (info["summary"]["row_start"], info["summary"]["row_stop"]) == (150, 300)
    assert run_cli(capsys, "inspect", shards[1])[0] == 0  # the table form too


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("value", ["3/3", "4/3", "-1/3", "1-3", "a/b", "0/0", "1/", ""])
def test_bad_shard_value_is_a_usage_error(tmp_path, capsys, built, value):
    out = tmp_path / "s.h5"
    code, _, err = run_cli(capsys, "score", built["model"], built["features"], "--shard", value, "-o", out)
    assert code == 2 and clean_error(err) and "--shard" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def three(tmp_path, capsys, built):
    (tmp_path / "run").mkdir()
    return score_shards(capsys, built, tmp_path / "run", 3)


def merge_fails(capsys, tmp_path, shards, expected_code, *words):
    out = tmp_path / "merged.h5"
    code, _, err = run_cli(capsys, "merge-scores", *shards, "-o", out)
    assert code == expected_code and clean_error(err), (code, err)
    for word in words:
        assert word in err, err
    assert not out.exists() and not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    return err


def test_missing_shards_are_named(tmp_path, capsys, three):
    err = merge_fails(capsys, tmp_path, [three[0], three[2]], 3, "shard(s) 1 of 3 missing")
    assert str(three[0]) in err
    merge_fails(capsys, tmp_path, [three[2]], 3, "shard(s) 0, 1 of 3 missing")


def test_duplicate_or_overlapping_shard(tmp_path, capsys, built, three):
    merge_fails(capsys, tmp_path, [*three, three[1]], 5, "is shard 1 of 3, as is")
    copy = tmp_path / "copy.h5"
    copy.write_bytes(three[2].read_bytes())
    merge_fails(capsys, tmp_path, [*three, copy], 5, f"{copy}: is shard 2 of 3")
    (tmp_path / "two").mkdir()
    halves = score_shards(capsys, built, tmp_path / "two", 2)  # rows 0..250 overlap shards 0 and 1 of 3
    merge_fails(capsys, tmp_path, [halves[0], three[1], three[2]], 5, "has shard count 3 but", "has 2")


def test_shards_of_another_model_or_batch_size(tmp_path, capsys, built, three):
    (tmp_path / "other").mkdir()
    other = score_shards(capsys, built, tmp_path / "other", 3, model=built["other_model"])
    merge_fails(capsys, tmp_path, [three[0], other[1], three[2]], 5, f"{other[1]}: was scored with a different model")
    (tmp_path / "batch").mkdir()
    batch = score_shards(capsys, built, tmp_path / "batch", 3, batch_rows=64)
    merge_fails(capsys, tmp_path, [three[0], three[1], batch[2]], 5, "batch size 64")


def test_shards_scored_with_other_options_need_one_at_merge(tmp_path, capsys, built, three):
    (tmp_path / "c").mkdir()
    low = score_shards(capsys, built, tmp_path / "c", 3, extra=["--contamination", "0.1"])
    merge_fails(capsys, tmp_path, [three[0], three[1], low[2]], 5, "--contamination")
    assert run_cli(capsys, "merge-scores", three[0], three[1], low[2], "-o", tmp_path / "ok.h5", "--contamination", "0.1")[0] == 0


def test_wrong_kinds(tmp_path, capsys, built, three):
    merge_fails(capsys, tmp_path, [built["scores"]], 3, "is a scores artifact, expected scores_shard")
    merge_fails(capsys, tmp_path, [three[0], three[1], built["features"]], 3, "expected scores_shard")
    code, _, err = run_cli(capsys, "evaluate", three[0])
    assert code == 3 and clean_error(err) and "merge-scores" in err
    code, _, err = run_cli(capsys, "merge-scores", "-o", tmp_path / "merged.h5")
    assert code == 2 and clean_error(err)
    code, _, err = run_cli(capsys, "merge-scores", *three, "--contamination", "0.1", "--threshold", "1", "-o", tmp_path / "m.h5")
    assert code == 2 and clean_error(err) and not (tmp_path / "m.h5").exists()


def test_a_shard_whose_rows_do_not_match_its_index_is_corrupt(tmp_path, capsys, three):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(three[1].read_bytes())
    with h5py.File(bad, "a") as f:
        f.attrs["row_start"] = 100  # shard 1 of 3 starts at row 150
        f.attrs["fingerprint"] = art.content_fingerprint(f)
    merge_fails(capsys, tmp_path, [three[0], bad, three[2]], 3, "are not the rows of shard 1 of 3")


def test_bad_batch_rows_is_a_usage_error(tmp_path, capsys, built):
    code, _, err = run_cli(capsys, "score", built["model"], built["features"], "--shard", "0/2", "--batch-rows", "0",
                           "-o", tmp_path / "s.h5")
    assert code == 2 and clean_error(err) and "--batch-rows" in err and not (tmp_path / "s.h5").exists()


@pytest.mark.parametrize("bad", ["missing", "not_hdf5", "truncated"])
def test_unreadable_shard_files(tmp_path, capsys, three, bad):
    path = tmp_path / "bad.h5"
    if bad == "not_hdf5":
        path.write_text("a,b\n1,2\n")
    elif bad == "truncated":
        data = three[1].read_bytes()
        path.write_bytes(data[: len(data) // 2])
    merge_fails(capsys, tmp_path, [three[0], path, three[2]], 3, str(path))


def test_score_of_the_training_rows_takes_trains_scores_which_equal_the_networks(tmp_path, capsys, monkeypatch):
    """``train`` stores the score of every row it was trained on, computed in score's own batches;
    ``score`` of that features file takes them without loading the network. Over several batches
    (20,000 rows: 2 of SCORE_BATCH_ROWS) they must be exactly what the network computes: the
    shards below score with the network, and their merge must equal the stored scores bit for bit."""
    from deepuad.artifacts.model import TRAINING_SCORES
    from deepuad.estimators.params import SCORE_BATCH_ROWS

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(19_000, 4)), rng.uniform(-6, 6, size=(1_000, 4))]).astype(np.float32)
    assert len(X) > SCORE_BATCH_ROWS
    np.savez(tmp_path / "rows.npz", X=X, y=(np.arange(len(X)) >= 19_000).astype(np.int8))
    paths = {name: tmp_path / f"{name}.h5" for name in ("features", "clusters", "model")}
    for step in [("extract", tmp_path / "rows.npz", "-o", paths["features"]),
                 ("cluster", paths["features"], "--clusters", "4", "-o", paths["clusters"]),
                 ("train", paths["features"], paths["clusters"], "-o", paths["model"], "--epochs", "2", "--r", "1",
                  "--layers", "4,2", "--reselect-clusters", "3", "--batch-size", "1024", "--threads", "1", "--device", "cpu")]:
        code, _, err = run_cli(capsys, *step)
        assert code == 0, (step, err)
    with h5py.File(paths["model"], "r") as f:
        assert f[TRAINING_SCORES].shape == (len(X),) and f.attrs["training_scores_batch_rows"] == SCORE_BATCH_ROWS
    shards = [tmp_path / f"s.scores.shard-{i}-of-2.h5" for i in range(2)]
    for i, shard in enumerate(shards):
        code, _, err = run_cli(capsys, "score", paths["model"], paths["features"], "--shard", f"{i}/2", "--threads", "1",
                               "-o", shard)
        assert code == 0, err
    code, _, err = run_cli(capsys, "merge-scores", *shards, "-o", tmp_path / "network.scores.h5")
    assert code == 0, err

    def no_network(*args, **kwargs):
        raise AssertionError("score loaded the network for the rows the model was trained on")
    monkeypatch.setattr("deepuad.stages.score.load_model", no_network)
    code, _, err = run_cli(capsys, "score", paths["model"], paths["features"], "--threads", "1", "-o", tmp_path / "stored.scores.h5")
    assert code == 0, err
    assert_same_scores(tmp_path / "stored.scores.h5", tmp_path / "network.scores.h5")
    # other batches than train's: the network scores them (no_network raises, exit 1)
    code, _, err = run_cli(capsys, "score", paths["model"], paths["features"], "--batch-rows", "1000", "-o", tmp_path / "b.h5")
    assert code != 0 and "loaded the network" in err
    # scores computed on another device than the one asked for: the network scores them; "auto" takes them
    elsewhere = tmp_path / "gpu.model.h5"
    elsewhere.write_bytes(paths["model"].read_bytes())
    with h5py.File(elsewhere, "a") as f:
        f.attrs["params"] = json.dumps({**json.loads(f.attrs["params"]), "device": "cuda:0"})
    code, _, err = run_cli(capsys, "score", elsewhere, paths["features"], "--device", "cpu", "-o", tmp_path / "c.h5")
    assert code != 0 and "loaded the network" in err
    code, _, err = run_cli(capsys, "score", elsewhere, paths["features"], "--device", "auto", "-o", tmp_path / "d.h5")
    assert code == 0, err
