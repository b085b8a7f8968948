"""The panel's instrument: bench/synthetic.py's planted anomalies are the type and share they claim,
bench/panel.py's split is fixed by its seed and keeps groups whole, and bench/choose_defaults.py
sees the tuning half only. Generated data only (the docstring check also reads ../shared/data
where it is present)."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synthetic():
    return load("synthetic")


@pytest.fixture(scope="module")
def panel():
    return load("panel")


@pytest.fixture(scope="module")
def choose():
    return load("choose_defaults")


def two_modes(rows: int = 300, seed: int = 0) -> np.ndarray:
    """Normal rows in two tight modes away from the origin, columns 0 and 1 strongly correlated."""
    rng = np.random.default_rng(seed)
    centre = np.where(rng.random(rows) < 0.5, 3.0, 6.0)[:, None]
    X = centre + rng.normal(scale=0.2, size=(rows, 3))
    X[:, 1] = X[:, 0] + rng.normal(scale=0.05, size=rows)
    return X


# ----------------------------------------------------------------------------- synthetic anomalies
@pytest.mark.parametrize("kind", ["local", "global", "dependency", "clustered"])
@pytest.mark.parametrize("share", [0.01, 0.05, 0.2])
def test_plant_keeps_the_normal_rows_and_adds_the_share(synthetic, kind, share):
    normal = two_modes()
    X, y = synthetic.plant(normal, kind, share, seed=1)
    expected = max(1, round(share / (1 - share) * len(normal)))
    assert int(y.sum()) == expected and len(y) == len(normal) + expected
    assert abs(y.mean() - share) <= 1 / len(y)
    # the normal rows come back untouched (in a shuffled order)
    np.testing.assert_array_equal(np.sort(X[y == 0], axis=0), np.sort(normal, axis=0))
    X2, y2 = synthetic.plant(normal, kind, share, seed=1)
    np.testing.assert_array_equal(X, X2)  # seeded


def test_clustered_anomalies_sit_far_from_the_normal_modes(synthetic):
    normal = two_modes()
    A = synthetic.anomalies(normal, "clustered", 200, np.random.default_rng(0))
    # means scaled by 5: around 15 and 30, the normal modes at 3 and 6
    nearest_normal = np.min(np.linalg.norm(A[:, None, :] - normal[None, :, :], axis=2), axis=1)
    assert nearest_normal.min() > 10
    # same covariances: as tight as a normal mode
    assert np.std(A[:, 2][A[:, 2] < 22]) < 0.5


def test_local_anomalies_keep_the_means_and_widen_the_spread_by_sqrt_5(synthetic):
    normal = two_modes(600)
    A = synthetic.anomalies(normal, "local", 4000, np.random.default_rng(0))
    mode = np.where(A[:, 2] < 4.5, 3.0, 6.0)
    assert abs(np.mean(A[:, 2] - mode)) < 0.05
    ratio = np.var(A[:, 2] - mode) / 0.2 ** 2
    assert 3.5 < ratio < 6.5  # covariances x 5


def test_global_anomalies_fill_the_widened_box(synthetic):
    normal = two_modes()
    A = synthetic.anomalies(normal, "global", 3000, np.random.default_rng(0))
    low, high = normal.min(axis=0), normal.max(axis=0)
    middle, half = (low + high) / 2, 1.1 * (high - low) / 2
    assert np.all(A >= middle - half) and np.all(A <= middle + half)
    outside = np.mean((A < low) | (A > high), axis=0)
    assert np.all((outside > 0.05) & (outside < 0.13))  # 1 - 1/1.1 = 0.09 of each feature beyond the normal range


def test_dependency_anomalies_keep_each_marginal_and_lose_the_correlation(synthetic):
    normal = two_modes(400)
    A = synthetic.anomalies(normal, "dependency", 400, np.random.default_rng(0))
    for j in range(normal.shape[1]):  # n = all rows: each column is a permutation of the normal column
        np.testing.assert_array_equal(np.sort(A[:, j]), np.sort(normal[:, j]))
    assert np.corrcoef(normal[:, 0], normal[:, 1])[0, 1] > 0.95
    assert abs(np.corrcoef(A[:, 0], A[:, 1])[0, 1]) < 0.2


def test_unknown_kind_is_refused(synthetic):
    with pytest.raises(ValueError, match="unknown anomaly type"):
        synthetic.anomalies(two_modes(), "seasonal", 5, np.random.default_rng(0))


def test_spikes_change_one_value_in_each_spiked_row(synthetic):
    normal = two_modes()
    normal[:, 2] = 1.0  # a constant column is never spiked
    X, y = synthetic.spikes(normal, 20, seed=3)
    changed = X != normal
    assert int(y.sum()) == 20 and np.array_equal(changed.any(axis=1), y == 1)
    assert np.all(changed.sum(axis=1)[y == 1] == 1) and not changed[:, 2].any()
    rows, columns = np.nonzero(changed)
    low, high = normal.min(axis=0), normal.max(axis=0)
    np.testing.assert_allclose(X[rows, columns], high[columns] + 10 * (high[columns] - low[columns]))


def test_spike_recall_counts_spikes_above_the_99th_percentile(synthetic):
    y = np.r_[np.zeros(100, dtype=int), np.ones(4, dtype=int)]
    scores = np.r_[np.arange(100.0), [200.0, 99.5, 97.5, 300.0]]  # 99th percentile of 0..99: 98.01
    assert synthetic.spike_recall(scores, y) == 0.75
    assert synthetic.spike_recall(np.r_[np.arange(100.0), [0, 1, 2, 3]], y) == 0.0
    # the misses counted: the spike at 97.5 lies below the percentile; one exactly at it is missed too
    assert synthetic.spikes_missed(scores, y) == 1
    at_bar = np.r_[np.arange(100.0), [200.0, np.percentile(np.arange(100.0), 99), 97.5, 300.0]]
    assert synthetic.spikes_missed(at_bar, y) == 2 and synthetic.spike_recall(at_bar, y) == 0.5


def test_synthetic_groups_sort_by_type_then_share_as_a_number(synthetic):
    groups = ["local_20", "clustered_5", "local_5", "clustered_10", "local_1"]
    assert sorted(groups, key=synthetic.type_and_share) == ["clustered_5", "clustered_10", "local_1", "local_5", "local_20"]


# ----------------------------------------------------------------------------- the split
def fake_catalog(panel, tmp_path, count=12):
    folder = tmp_path / "adbench"
    folder.mkdir(exist_ok=True)
    for i in range(1, count + 1):
        (folder / f"{i}_set{i}.npz").touch()  # the catalog only lists names; no loader runs
    return panel.catalog(2000, tmp_path / "data", folder, bases=("2_set2", "5_set5", "7_set7", "11_set11"),
                         fortunes_dir=tmp_path / "no-fortunes")


def test_split_is_fixed_by_its_seed_and_keeps_groups_whole(panel, tmp_path):
    sets = fake_catalog(panel, tmp_path)
    halves = panel.split(sets)
    assert halves == panel.split(sets) and set(halves.values()) == {"tuning", "held-out"}
    assert any(panel.split(sets, seed) != halves for seed in (1, 2, 3))
    groups: dict = {}
    for name, family, group, _ in sets:
        groups.setdefault(group, set()).add(halves[name])
    assert all(len(h) == 1 for h in groups.values())  # a base's table, synthetic and spike sets share a half
    assert len({halves[f"kddcup_{c}"] for c in (5, 10, 20)}) == 1
    for family in ("tables", "images", "synthetic", "spikes"):
        members = [halves[name] for name, fam, *_ in sets if fam == family]
        tuning = members.count("tuning")
        assert 0 < tuning < len(members)
        largest = max(sum(1 for n, f, g, _ in sets if f == family and g == group) for group in groups)
        assert abs(2 * tuning - len(members)) <= largest  # balanced up to one group


def test_docstring_states_the_split(panel):
    """The tuning half printed in panel.py's docstring is the one SPLIT_SEED gives on ../shared/data."""
    data = panel.DATA
    if not (data / "odds_adbench").is_dir():
        pytest.skip(f"shared data folder {data} is absent")
    sets = panel.catalog(2000, data, data / "odds_adbench")
    halves = panel.split(sets)
    doc = " ".join(panel.__doc__.split())
    for family in ("tables", "images"):
        stated = re.search(rf"\* {family}: ([^;]+);", doc.split("tuning half is")[1]).group(1).split(", ")
        assert sorted(stated) == sorted(n for n, f, *_ in sets if f == family and halves[n] == "tuning")
    bases = re.search(r"built on ([\w, ]+) and (\w+);", doc)
    stated = bases.group(1).split(", ") + [bases.group(2)]
    assert sorted(stated) == sorted(g for n, f, g, _ in sets if f == "spikes" and halves[n] == "tuning")


# ----------------------------------------------------------------------------- the protocol
CANDIDATES = {"default": {}, "paper": {"score": "cosine", "tol": 0.0}, "wide": {"layers": (64, 32)}}


def panel_rows() -> list[dict]:
    """Tuning: 'wide' wins three synthetic sets by a little, 'default' the one kddcup set by a lot
    (mean over sets prefers wide, mean of family means prefers default); held-out favours paper."""
    rows = []
    tuning = {("s1", "synthetic"): (0.80, 0.70, 0.83), ("s2", "synthetic"): (0.80, 0.70, 0.83),
              ("s3", "synthetic"): (0.80, 0.70, 0.83), ("k", "kddcup"): (0.95, 0.60, 0.80)}
    for (name, family), aurocs in tuning.items():
        for method, auroc in zip(("deepuad", "deepuad-paper", "deepuad:wide"), aurocs):
            for seed in (0, 1):
                rows.append({"dataset": name, "family": family, "half": "tuning", "method": method, "seed": seed, "auroc": auroc})
        rows.append({"dataset": name, "family": family, "half": "tuning", "method": "iforest", "seed": 0, "auroc": 0.99})
    for method, auroc in (("deepuad", 0.5), ("deepuad-paper", 0.99), ("deepuad:wide", 0.6)):
        rows.append({"dataset": "h", "family": "tables", "half": "held-out", "method": method, "seed": 0, "auroc": auroc})
    return rows


def test_choice_is_the_best_mean_of_family_means(choose):
    ranking = choose.rank(panel_rows(), CANDIDATES)
    assert [c["name"] for c in ranking] == ["default", "wide", "paper"]
    assert ranking[0]["score"] == pytest.approx((0.80 + 0.95) / 2) and ranking[0]["sets"] == 4


def test_ties_go_to_fewer_overrides(choose):
    rows = [r | {"auroc": 0.8} for r in panel_rows() if r["method"] != "deepuad"]
    assert [c["name"] for c in choose.rank(rows, CANDIDATES)] == ["wide", "paper"]  # 1 override before 2


def test_a_candidate_that_misses_a_spike_ranks_after_every_one_that_misses_none(choose):
    spikes = [{"dataset": "p", "family": "spikes", "half": "tuning", "method": method, "seed": 0, "auroc": 0.99,
               "spike_recall": recall}
              for method, recall in (("deepuad", 0.95), ("deepuad-paper", 1.0), ("deepuad:wide", 1.0))]
    ranking = choose.rank(panel_rows() + spikes, CANDIDATES)
    assert [c["name"] for c in ranking] == ["wide", "paper", "default"]  # default's mean is the best, but it missed one
    assert [c["spikes_missed"] for c in ranking] == [0, 0, 1]
    missed_on_held_out = [r | {"half": "held-out", "dataset": "q"} for r in spikes]
    assert [c["name"] for c in choose.rank(panel_rows() + missed_on_held_out, CANDIDATES)][0] == "default"


def test_a_candidate_that_fails_a_must_hold_ranks_after_every_one_that_fails_none(choose):
    ranking = choose.rank(panel_rows(), CANDIDATES, fails={"default": "a reason"})
    assert [c["name"] for c in ranking] == ["wide", "paper", "default"]  # default's mean is the best, but it fails
    assert [c["fails"] for c in ranking] == [False, False, True]
    assert [c["name"] for c in choose.rank(panel_rows(), CANDIDATES, fails={})][0] == "default"


def test_choice_ignores_every_held_out_row(choose, tmp_path):
    def run(rows):
        path = tmp_path / "panel.csv"
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, ["dataset", "family", "half", "method", "seed", "auroc"])
            writer.writeheader()
            writer.writerows(rows)
        done = subprocess.run([sys.executable, str(BENCH / "choose_defaults.py"), str(path), "--json"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    rows = panel_rows()
    before = run(rows)
    assert json.loads(before)["chosen"] == "default"
    changed = [r | {"auroc": 1.0 - r["auroc"]} if r["half"] == "held-out" else r for r in rows]
    changed += [{"dataset": f"h{i}", "family": "images", "half": "held-out", "method": "deepuad:paper", "seed": 0, "auroc": 1.0}
                for i in range(5)]
    changed += [{"dataset": "s1", "family": "synthetic", "half": "held-out", "method": "deepuad-paper", "seed": 5, "auroc": 1.0}]
    assert run(changed) == before


# ----------------------------------------------------------------------------- the share table
def test_share_agreement_counts_within_2x_and_ranks():
    tables = load("panel_tables")
    true = np.array([0.01, 0.05, 0.10, 0.20])
    within, median, rho = tables.share_agreement(true, np.array([0.02, 0.12, 0.04, 0.25]))  # ratios 2, 2.4, 0.4, 1.25
    assert within == 2 and median == pytest.approx(1.625) and rho == pytest.approx(0.8)
    # KDDCUP's estimate is of the train half, which holds the level in the set's name
    assert tables.true_share({"family": "kddcup", "dataset": "kddcup_20", "anomaly_share": "0.19"}) == 0.2
    assert tables.true_share({"family": "tables", "dataset": "4_breastw", "anomaly_share": "0.35"}) == 0.35


# ----------------------------------------------------------------------------- the kept set's purity
def test_kept_share_ratio_is_the_kept_rows_anomaly_share_over_all_rows():
    purity = load("cleaning_purity")
    X = np.arange(20, dtype=np.float64).reshape(10, 2)
    y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])  # 20 % anomalies
    assert purity.kept_share_ratio(X, y, X[:8]) == 0.0  # every anomaly left out
    assert purity.kept_share_ratio(X, y, X) == pytest.approx(1.0)  # no better than chance
    assert purity.kept_share_ratio(X, y, X[[0, 8]]) == pytest.approx(0.5 / 0.2)
    twice = np.vstack([X, X[:1]])  # a value two rows share, one of them an anomaly: it counts their mean label
    assert purity.kept_share_ratio(twice, np.append(y, 1), twice[:1]) == pytest.approx(0.5 / (3 / 11))
    assert purity.group_of("4_breastw+clustered_20", "synthetic") == "clustered"
    assert purity.group_of("mnist_3", "images") == "images"


def test_cleaning_variants_refuses_a_split_whose_held_out_half_has_run(panel, tmp_path):
    variants = load("cleaning_variants")
    used = max(variants.USED_SPLITS)
    assert panel.SPLIT_SEED >= used  # the split in use is the last one used, or the fresh one a round opened
    done = subprocess.run([sys.executable, str(BENCH / "cleaning_variants.py"), "--split-seed", str(used),
                           "--table-only"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "held-out half has run" in done.stderr
    path = tmp_path / "variants.csv"
    names = list(variants.VARIANTS)
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, ["dataset", "family", *names])
        writer.writeheader()
        writer.writerow({"dataset": "t", "family": "tables", **{n: 0.5 for n in names}, names[1]: 0.7})
        writer.writerow({"dataset": "b+clustered_20", "family": "synthetic", **{n: 0.9 for n in names}, names[1]: 1.0})
    text = variants.table(path, 99)
    assert "| tables | 1 | 0.500 | 0.700 |" in text and "| clustered_20 | 1 | 0.900 | 1.000 |" in text
    assert "| **mean of family means** | | **0.700** | **0.850** |" in text
    assert "Spearman" not in text  # no signals recorded: no correlation to give
    with path.open("w", newline="") as out:  # trim's gain grows with the copies, falls with the overlap
        writer = csv.DictWriter(out, ["dataset", "family", *names, *variants.SIGNALS])
        writer.writeheader()
        for i, gain in enumerate((-0.1, 0.0, 0.2)):
            writer.writerow({"dataset": f"t{i}", "family": "tables", **{n: 0.5 for n in names}, "trim": 0.5 + gain,
                             "copies": i, "paper kept": 0.7, "trim kept": 0.9 - i / 10, "overlap": 1 - i / 10})
    text = variants.table(path, 99)
    assert "over 3 sets (trim ahead on 1)" in text
    assert "| copies | +1.00 |" in text and "| overlap | -1.00 |" in text and "| trim kept | -1.00 |" in text
    assert "| paper kept | constant |" in text


# ----------------------------------------------------------------------------- which part to trust
def test_part_choice_signals_weights_and_table(panel, tmp_path):
    choice = load("part_choice")
    done = subprocess.run([sys.executable, str(BENCH / "part_choice.py"), "--split-seed", str(max(load("cleaning_variants").USED_SPLITS)),
                           "--table-only"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "held-out half has run" in done.stderr
    rng = np.random.default_rng(0)
    symmetric = np.concatenate([rng.normal(size=5000), -rng.normal(size=5000)])
    assert choice.tail(symmetric) == pytest.approx(2.326 / 1.349, rel=0.05)  # the normal's q99 in IQRs
    assert abs(choice.skew(symmetric)) < 0.1 and choice.skew(rng.exponential(size=5000)) > 1.5
    # a part weighted 0 drops out; the range (not standardised) is always added
    values = {p: rng.normal(size=50) for p in choice.DEFAULT_PARTS}
    values.update({f"{p}@fit": rng.normal(size=200) for p in choice.DEFAULT_PARTS})
    values["range"] = np.abs(values["range"])
    only_knn = choice.weighted_score(values, {p: float(p == "knn") for p in choice.STANDARDISED})
    center, scale = choice.scoring.robust_scale(values["knn@fit"])
    assert np.allclose(only_knn, (values["knn"] - center) / scale + values["range"])
    # the table: the share of sets where a signal's first part is the best part
    path = tmp_path / "choice.csv"
    columns = ["dataset", "family", *(f"{k}:{p}" for p in choice.DEFAULT_PARTS for k in ("auroc", *choice.SIGNALS)),
               *choice.VARIANTS]
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        other = next(p for p in choice.STANDARDISED if p != "knn")
        for i, best in enumerate(("knn", other)):
            row = {c: 0.5 for c in columns[2:]} | {"dataset": f"t{i}", "family": "tables", f"auroc:{best}": 0.9}
            row.update({f"tail:{p}": float(p == "knn") for p in choice.DEFAULT_PARTS})  # tail always ranks knn first
            writer.writerow(row)
    text = choice.table(path, 99)
    assert "always knn: 0.50" in text or f"always {other}: 0.50" in text
    assert "| tail | 0.50 |" in text and "| knn alone | 0.700 | 0.7000 |" in text


# ----------------------------------------------------------------------------- how far the parts go
def test_score_frontier_neighbours_match_the_package_and_the_k_th_distance():
    frontier = load("score_frontier")
    from deepuad.estimators import scoring

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 4)).astype(np.float32)
    X = np.vstack([reference[:50], rng.normal(size=(20, 4)).astype(np.float32)])  # rows in the reference, and new rows
    got = frontier.neighbour_values(reference, X)
    assert np.allclose(got["mean5"], np.log(scoring.knn_distances(np.unique(reference, axis=0), X, 5) + 1e-12))
    # the k-th distance: a row of the reference skips itself, a new row does not
    distances = np.sqrt(((X[:, None, :].astype(np.float64) - reference[None].astype(np.float64)) ** 2).sum(-1))
    ordered = np.sort(distances, axis=1)
    expected = np.where(np.arange(len(X)) < 50, ordered[:, 10], ordered[:, 9])
    assert np.allclose(got["kth10"], np.log(expected + 1e-12), atol=1e-6)
    assert (got["kth40"] >= got["kth10"]).all() and (got["mean10"] <= got["kth10"] + 1e-9).all()


def test_exploration_scripts_refuse_a_used_split():
    used = max(load("cleaning_variants").USED_SPLITS)
    for script in ("score_frontier.py", "wide_spikes.py"):
        done = subprocess.run([sys.executable, str(BENCH / script), "--split-seed", str(used)], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode != 0 and "held-out half has run" in done.stderr, script


class _Cache:
    """parts_panel.Values' surface that wide_parts reads."""

    def __init__(self, X, kept, seed=0):
        self.X, self.cache, self.seed = X, {"kept/reference": kept}, seed


def test_parts_panel_wide_parts_need_both_width_and_level():
    parts_panel = load("parts_panel")
    wide = {"parts": ("knn", "l2"), "columns": 200, "level": 2.0}
    rng = np.random.default_rng(0)
    # rare strokes of any strength, as on pixels: normal rows lie far beyond some column's range by chance
    sparse = ((rng.random((400, 300)) < 0.02) * rng.random((400, 300)) ** 4).astype(np.float32)
    dense = rng.normal(size=(400, 300)).astype(np.float32)  # nothing lies far out by chance
    assert parts_panel.wide_parts(_Cache(sparse, sparse), wide) == ("knn", "l2")
    assert parts_panel.wide_parts(_Cache(dense, dense), wide) is None  # wide, but its level is low
    assert parts_panel.wide_parts(_Cache(sparse[:, :199], sparse[:, :199]), wide) is None  # too narrow
    assert parts_panel.wide_parts(_Cache(sparse, sparse), None) is None


def test_parts_panel_by_data_takes_the_many_columns_entry_below_the_level():
    parts_panel = load("parts_panel")
    many = {"parts": ("knn", "l2", "range"), "weights": {"knn": 2.0}}
    wide = {"parts": ("knn", "l2", "cosine"), "columns": 200, "level": 2.0, "many": many}
    rng = np.random.default_rng(0)
    sparse = ((rng.random((400, 300)) < 0.02) * rng.random((400, 300)) ** 4).astype(np.float32)
    dense = rng.normal(size=(400, 300)).astype(np.float32)
    binary = (rng.random((400, 300)) < 0.1).astype(np.float32)
    assert parts_panel.by_data(_Cache(sparse, sparse), wide) == (("knn", "l2", "cosine"), {})  # wide: the level rules
    assert parts_panel.by_data(_Cache(dense, dense), wide) == (("knn", "l2", "range"), {"knn": 2.0})
    assert parts_panel.by_data(_Cache(dense[:, :199], dense[:, :199]), wide) is None  # too few columns
    assert parts_panel.wide_parts(_Cache(dense, dense), wide) is None  # wide_parts knows the wide entry alone
    # "modal_share": only where the columns are dense, not where most rows share one value
    dense_only = dict(wide, many=dict(many, modal_share=0.05))
    assert parts_panel.by_data(_Cache(dense, dense), dense_only) == (("knn", "l2", "range"), {"knn": 2.0})
    assert parts_panel.by_data(_Cache(binary, binary), dense_only) is None


def test_reserved_bases_are_the_eligible_tables_not_drawn(tmp_path):
    unseen_bases = load("unseen_bases")
    rng = np.random.default_rng(0)
    for i in range(1, 13):  # eleven eligible tables, one too small; the panel's bases are left out by name
        normal_rows = 300 if i == 12 else 1000
        np.savez(tmp_path / f"{i}_t{i}.npz", X=rng.normal(size=(normal_rows + 5, 3)), y=np.r_[np.zeros(normal_rows), np.ones(5)])
    np.savez(tmp_path / "13_wide.npz", X=rng.normal(size=(1005, 101)), y=np.r_[np.zeros(1000), np.ones(5)])
    eligible = unseen_bases.eligible_bases(tmp_path)
    assert eligible == [f"{i}_t{i}" for i in range(1, 12)]
    drawn, reserved = unseen_bases.new_bases(tmp_path), unseen_bases.reserved(tmp_path)
    assert len(drawn) == 8 and len(reserved) == 3
    assert sorted(drawn + reserved, key=eligible.index) == eligible and not set(drawn) & set(reserved)
    assert reserved == [name for name in eligible if name in reserved]  # in the catalog's order


def test_network_parts_rotation_keeps_the_geometry_and_fills_every_column():
    network_parts = load("network_parts")
    rng = np.random.default_rng(1)
    X = (rng.random((50, 20)) < 0.1) * rng.random((50, 20))  # sparse, non-negative: pixel-like
    rotated = network_parts.rotated(X, seed=3)
    assert rotated.shape == X.shape and rotated.min() >= 0 and rotated.max() <= 1
    np.testing.assert_array_equal(rotated, network_parts.rotated(X, seed=3))
    assert not np.array_equal(rotated, network_parts.rotated(X, seed=4))
    assert (rotated > 0).mean() > 0.9 > (X > 0).mean()  # dense: every column a mixture of all of them
    # before the min-max scaling the rotation keeps every distance between rows
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((20, 20)))
    d = lambda A: np.linalg.norm(A[:, None] - A[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(X @ q), d(X), atol=1e-9)
    assert np.allclose(network_parts.panel._minmax(X @ q)[0], rotated, atol=1e-6)


def test_text_embeddings_reads_each_category_and_builds_one_class_sets(tmp_path):
    text_embeddings, fortunes = load("text_embeddings"), load("fortunes")
    (tmp_path / "big").write_text("one\n%\ntwo\nlines\n%\nthree\n%\n")
    (tmp_path / "small").write_text("alone\n%\n")
    (tmp_path / "big.dat").write_bytes(b"\x00\x01")  # the index beside each file is not a category
    assert fortunes.texts(tmp_path, 2) == {"big": ["one", "two\nlines", "three"]}
    assert sorted(fortunes.texts(tmp_path, 1)) == ["big", "small"]

    rng = np.random.default_rng(0)
    vectors = {"a": rng.normal(size=(100, 4)), "b": rng.normal(5, 1, size=(30, 4)), "c": rng.normal(-5, 1, size=(30, 4))}
    X, y = text_embeddings.one_set(vectors, "a")
    assert len(X) == 105 and y.sum() == 5 and X.min() == 0 and X.max() == 1  # 5 % of the set, min-max scaled
    again, y_again = text_embeddings.one_set(vectors, "a")
    np.testing.assert_array_equal(X, again)
    np.testing.assert_array_equal(y, y_again)
    # the anomalies come from the other categories, evenly: far from the normal rows on both sides
    anomalies = X[y == 1]
    assert (anomalies.mean(axis=1) > 0.6).sum() in (2, 3) and (anomalies.mean(axis=1) < 0.4).sum() in (2, 3)


def test_text_family_halves_follow_what_was_read_not_the_seed(panel, tmp_path):
    """The text sets read before the family joined the panel are tuning material at every seed, the rest held
    out; adding the family leaves every other family's halves as they were."""
    sets = fake_catalog(panel, tmp_path)
    texts = [(f"text_{c}", "text", f"text_{c}", None) for c in ("art", "zippy", "drugs", "law")]
    for seed in (1, 2, 3):
        with_text = panel.split(sets + texts, seed)
        assert {n: h for n, h in with_text.items() if not n.startswith("text_")} == panel.split(sets, seed)
        assert [with_text[n] for n, *_ in texts] == ["tuning", "tuning", "held-out", "held-out"]


def test_text_sets_can_be_built_from_the_cache_alone_where_the_model_is_missing(tmp_path, monkeypatch):
    import importlib.util

    fortunes = load("fortunes")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # no model package
    (tmp_path / "big.npy").touch()
    assert fortunes.can_embed({"big": ["a"]}, tmp_path)
    assert not fortunes.can_embed({"big": ["a"], "small": ["b"]}, tmp_path)


def test_catalog_holds_a_text_set_per_category_with_enough_texts(panel, tmp_path, monkeypatch):
    folder = tmp_path / "fortunes"
    folder.mkdir()
    (folder / "many").write_text("\n%\n".join(f"text {i}" for i in range(panel.TEXT_MIN_TEXTS)) + "\n%\n")
    (folder / "few").write_text("\n%\n".join(f"text {i}" for i in range(panel.TEXT_MIN_TEXTS - 1)) + "\n%\n")
    monkeypatch.setattr(panel.fortunes, "can_embed", lambda categories: True)
    names = [(n, f) for n, f, *_ in panel.catalog(100, tmp_path, tmp_path / "none", fortunes_dir=folder)]
    assert ("text_many", "text") in names and not any(n == "text_few" for n, _ in names)
    monkeypatch.setattr(panel.fortunes, "can_embed", lambda categories: False)  # no model, no cached embeddings
    assert not any(f == "text" for _, f, *_ in panel.catalog(100, tmp_path, tmp_path / "none", fortunes_dir=folder))
    assert not any(f == "text" for _, f, *_ in panel.catalog(100, tmp_path, tmp_path / "none", fortunes_dir=tmp_path / "absent"))
