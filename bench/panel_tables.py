"""panel.md from panel.csv: per half, each family's mean AUROC and mean rank and the mean of family
means (the headline); spike recall; estimated against true anomaly share; F1 at each method's own
threshold against F1 at the true share; sets below chance; every set's AUROC; wall time.

Means are over seeds first (one cell per set and method), then over a family's sets, then over
families: every family weighs the same whatever its number of sets. Only sets that every method
in the table finished enter a half's summary (the count left out is stated).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy.stats import rankdata, spearmanr

import synthetic

FIELDS = ["dataset", "family", "half", "rows_fit", "rows_scored", "features", "anomaly_share", "method", "seed", "auroc", "auprc",
          "f1_default", "f1_true_share", "spike_recall", "estimated_share", "seconds"]
FAMILY_ORDER = ("tables", "images", "text", "kddcup", "synthetic", "spikes")
PEER_ORDER = ("iforest", "knn", "ecod", "pyod-ae", "dagmm", "dif")
DAGMM_NOTE = ("DAGMM is not in the default method list: at its own defaults (200 epochs) one run took 31 s on 2,000 rows "
              "of 28_pendigits (one thread, a shared 2-core machine at load 7), about 5 hours for 3 seeds of the whole panel; "
              "`python bench/panel.py --methods dagmm` runs it.")


def chance_band(rows: int, anomaly_share: float) -> float:
    """Half-width of the 95 % band that a random ranking's AUROC falls in around 0.5 on a set of
    this size: 1.96 standard deviations of the Mann-Whitney statistic under no signal,
    sqrt((a + n + 1) / (12 a n)) for a anomalies and n normal rows. An AUROC inside the band says
    nothing either way (ALOI's 59 anomalies in 2,000 rows: +-0.075); one below it ranks the labelled
    anomalies as more normal than the normal rows, which no choice of ranking direction in an
    unsupervised method can know to undo."""
    anomalies = max(1, round(anomaly_share * rows))
    normal = max(1, rows - anomalies)
    return 1.96 * np.sqrt((anomalies + normal + 1) / (12 * anomalies * normal))


def below_chance(auroc: float, info_row: dict) -> bool:
    """Is ``auroc`` under 0.5 by more than the chance band of its set (a panel.csv row's sizes)?"""
    return auroc < 0.5 - chance_band(int(info_row["rows_scored"]), float(info_row["anomaly_share"]))


def method_order(methods) -> list[str]:
    """deepuad, deepuad-paper, the deepuad:NAME candidates, then the peers."""
    def key(m):
        if m == "deepuad":
            return (0, "")
        if m == "deepuad-paper":
            return (1, "")
        if m.startswith("deepuad:"):
            return (2, m)
        return (3, str(PEER_ORDER.index(m)) if m in PEER_ORDER else m)
    return sorted(set(methods), key=key)


def cells(rows: list[dict], column: str) -> dict:
    """{(dataset, method): mean of ``column`` over seeds}, blank values left out."""
    values: dict = {}
    for r in rows:
        if r.get(column, "") != "":
            values.setdefault((r["dataset"], r["method"]), []).append(float(r[column]))
    return {key: float(np.mean(v)) for key, v in values.items()}


def family_means(names: list[str], methods: list[str], cell: dict, family: dict) -> tuple[dict, dict]:
    """({family: mean AUROC per method}, {family: mean rank per method}) over ``names`` (each
    finished by every method); ranks are within a set, 1 = best, ties averaged."""
    means, ranks = {}, {}
    for fam in [f for f in FAMILY_ORDER if any(family[n] == f for n in names)]:
        members = [n for n in names if family[n] == fam]
        auroc = np.array([[cell[(n, m)] for m in methods] for n in members])
        means[fam] = auroc.mean(axis=0)
        ranks[fam] = np.array([rankdata(-row) for row in auroc]).mean(axis=0)
    return means, ranks


def _row(label: str, values) -> str:
    return f"| {label} | " + " | ".join(values) + " |"


def _half_summary(names: list[str], methods: list[str], cell: dict, info: dict) -> list[str]:
    complete = [n for n in names if all((n, m) in cell for m in methods)]
    if not complete:
        return ["(no data set finished for every method yet)"]
    family = {n: info[n]["family"] for n in complete}
    means, ranks = family_means(complete, methods, cell, family)
    lines = [f"{len(complete)} data sets finished for every method"
             + (f" ({len(names) - len(complete)} others left out)." if len(complete) < len(names) else "."), "",
             "Mean AUROC / mean rank (1 = best) per family; the headline is the mean of family means.", "",
             "| family | sets | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for fam in means:
        count = sum(family[n] == fam for n in complete)
        lines.append(f"| {fam} | {count} | " + " | ".join(f"{a:.3f} / {r:.2f}" for a, r in zip(means[fam], ranks[fam])) + " |")
    headline = np.mean(list(means.values()), axis=0), np.mean(list(ranks.values()), axis=0)
    best = headline[0].max()
    lines.append(f"| **mean of family means** | {len(complete)} | " + " | ".join(
        (f"**{a:.3f}**" if a == best else f"{a:.3f}") + f" / {r:.2f}" for a, r in zip(*headline)) + " |")
    peers = [m for m in methods if m == "deepuad" or not m.startswith("deepuad")]  # deepuad and its peers, no variant
    if "deepuad" in peers and len(peers) < len(methods):
        _, peer_ranks = family_means(complete, peers, cell, family)
        lines += ["", "Mean rank among deepuad and its peers alone (issue 29's comparison: no other configuration of "
                  "deepuad ranked), mean of family means: " + ", ".join(
                      f"{m} {r:.2f}" for m, r in zip(peers, np.mean(list(peer_ranks.values()), axis=0))) + "."]
    auroc = np.array([[cell[(n, m)] for m in methods] for n in complete])
    lines += ["", "| | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods),
              _row("sets below 0.5 AUROC", [str(int(v)) for v in (auroc < 0.5).sum(axis=0)]),
              _row("sets below chance (under 0.5 by more than the 95 % band of a random ranking)",
                   [str(sum(below_chance(a, info[n]) for a, n in zip(column, complete))) for column in auroc.T])]
    return lines


def _spike_table(names: list[str], methods: list[str], rows: list[dict], info: dict) -> list[str]:
    recall = cells(rows, "spike_recall")
    spiked = [n for n in names if info[n]["family"] == "spikes"]
    if not spiked:
        return []
    lines = ["## Spikes: share of spiked rows above the 99th percentile of the untouched rows' scores", "",
             "The goal is 1.0 on every set (mean over seeds).", "",
             "| data set | half | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for n in spiked:
        lines.append(f"| {n} | {info[n]['half']} | " + " | ".join(
            "" if (n, m) not in recall else f"{recall[(n, m)]:.2f}" for m in methods) + " |")
    lines.append("| **sets at 1.0** | | " + " | ".join(
        f"{sum(recall.get((n, m)) == 1.0 for n in spiked)} of {sum((n, m) in recall for n in spiked)}" for m in methods) + " |")
    return lines + [""]


def _synthetic_table(names: list[str], methods: list[str], cell: dict, info: dict) -> list[str]:
    """Mean AUROC per synthetic type and share (sets named <base>+<type>_<share>), per half: where
    each kind of anomaly is seen (the issue's goal for clustered anomalies at 10 and 20 %)."""
    lines = []
    for half in ("tuning", "held-out"):
        kinds: dict = {}
        for n in names:
            if info[n]["family"] == "synthetic" and info[n]["half"] == half:
                kinds.setdefault(n.split("+", 1)[1], []).append(n)
        if not kinds:
            continue
        if not lines:
            lines = ["## Synthetic anomalies by type and share (mean AUROC over the base sets)", ""]
        lines += [f"{half.capitalize()} half.", "", "| type, % | sets | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
        for kind, members in sorted(kinds.items(), key=lambda k: synthetic.type_and_share(k[0])):
            values = [[cell[(n, m)] for n in members if (n, m) in cell] for m in methods]
            best = max((np.mean(v) for v in values if v), default=None)
            lines.append(f"| {kind} | {len(members)} | " + " | ".join(
                "" if not v else (f"**{np.mean(v):.3f}**" if np.mean(v) == best else f"{np.mean(v):.3f}") for v in values) + " |")
        lines.append("")
    return lines


def share_agreement(true: np.ndarray, estimated: np.ndarray) -> tuple[int, float, float]:
    """(sets estimated within 2x of the true share, median estimated / true, Spearman correlation)."""
    ratio = estimated / true
    rho = spearmanr(true, estimated).statistic if len(true) > 1 else float("nan")
    return int(np.sum((ratio >= 0.5) & (ratio <= 2))), float(np.median(ratio)), float(rho)


def _share_table(names: list[str], methods: list[str], rows: list[dict], info: dict) -> list[str]:
    estimate = cells(rows, "estimated_share")
    estimating = [m for m in methods if any((n, m) in estimate for n in names)]
    if not estimating:
        return []
    lines = ["## Estimated against true anomaly share", "",
             "The true share is among the rows fitted (KDDCUP: the train half's level). Within 2x: estimate / true in [0.5, 2].", "",
             "| method | half | sets | within 2x | median estimate / true | Spearman |", "|---|---|---|---|---|---|"]
    for m in estimating:
        for half in ("tuning", "held-out"):
            done = [n for n in names if (n, m) in estimate and info[n]["half"] == half]
            if done:
                within, median, rho = share_agreement(np.array([true_share(info[n]) for n in done]),
                                                      np.array([estimate[(n, m)] for n in done]))
                lines.append(f"| {m} | {half} | {len(done)} | {within} | {median:.2f} | {rho:.2f} |")
    lines += ["", "| data set | half | true share | " + " | ".join(f"{m} (ratio)" for m in estimating) + " |",
              "|---|---|---|" + "---|" * len(estimating)]
    for n in names:
        if any((n, m) in estimate for m in estimating):
            t = true_share(info[n])
            lines.append(f"| {n} | {info[n]['half']} | {t:.3f} | " + " | ".join(
                "" if (n, m) not in estimate else f"{estimate[(n, m)]:.3f} ({estimate[(n, m)] / t:.2f})" for m in estimating) + " |")
    return lines + [""]


def true_share(info_row: dict) -> float:
    """The anomaly share among the rows a method was fitted on: the scored rows', except KDDCUP,
    whose train half holds the level in its name (kddcup_5: 5 %)."""
    if info_row["family"] == "kddcup":
        return int(info_row["dataset"].split("_")[1]) / 100
    return float(info_row["anomaly_share"])


def _f1_table(names: list[str], methods: list[str], rows: list[dict], info: dict) -> list[str]:
    default, best = cells(rows, "f1_default"), cells(rows, "f1_true_share")
    lines = ["## F1 at each method's own threshold / F1 at the true share (mean of family means)", "",
             "Own threshold: deepuad's labels_; PyOD, DeepOD and DAGMM at their default 10 % contamination; Isolation Forest "
             "at scikit-learn's 'auto' offset. True share: the top k scores, k = the true number of anomalies.", "",
             "| half | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for half in [h for h in ("tuning", "held-out") if any(info[n]["half"] == h for n in names)]:
        texts = []
        for m in methods:
            pair = []
            for table in (default, best):
                done = [n for n in names if info[n]["half"] == half and (n, m) in table]
                fams = {info[n]["family"] for n in done}
                pair.append(np.mean([np.mean([table[(n, m)] for n in done if info[n]["family"] == f]) for f in fams]) if fams else None)
            texts.append(" / ".join("–" if v is None else f"{v:.3f}" for v in pair))
        lines.append(_row(half, texts))
    return lines + [""]


def _seeds_per_set(rows: list[dict], method: str, names: list[str]) -> str:
    """The seeds ``method`` ran, per set: '<method> 0, 1, 2 on every set', or how many sets ran
    fewer (named when at most 8). The union of seeds over sets would hide a method that ran three
    seeds on a few sets and one on the rest."""
    seeds = {n: sorted({int(r["seed"]) for r in rows if r["method"] == method and r["dataset"] == n}) for n in names}
    seeds = {n: s for n, s in seeds.items() if s}
    most = max(seeds.values(), key=len)
    fewer = [n for n, s in seeds.items() if len(s) < len(most)]
    named = f" ({', '.join(fewer)})" if len(fewer) <= 8 else ""
    return f"{method} {', '.join(map(str, most))} on " + (
        "every set" if not fewer else f"{_sets(len(seeds) - len(fewer))}, fewer on {len(fewer)}{named}")


# the ablation columns, in this order; between them, each part alone ("ablation:<part>-alone"), as the CSV holds them
ABLATIONS = ("deepuad", "ablation:no-cleaning", "ablation:kept-reference", "ablation:untrimmed-reference")
ABLATIONS_AFTER = ("deepuad-paper", "iforest")


def _ablation_table(names: list[str], methods: list[str], cell: dict, info: dict) -> list[str]:
    """Per half and family, the default against itself without cleaning (network and parts on all
    rows), with its parts fitted on the kept rows, each part alone, the paper's reading and Isolation
    Forest (bench/parts_panel.py --ablations), over the sets all of them finished."""
    alone = sorted(m for m in methods if m.startswith("ablation:") and m.endswith("-alone"))
    shown = [m for m in (*ABLATIONS, *alone, *ABLATIONS_AFTER) if m in methods]
    if not any(m.startswith("ablation:") for m in shown):
        return []
    lines = ["## Ablations of the default", "",
             "`no-cleaning`: the network trained on every row and the parts fitted on all rows; `kept-reference`: the "
             "parts fitted on the kept rows instead of all rows; `untrimmed-reference`: the reference not trimmed by its tails "
             "(cleaning.tails_trim); `<part>-alone`: one part of the default, as the "
             "default fits it; then the paper's reading and Isolation Forest. Mean AUROC per family.", ""]
    for half in ("tuning", "held-out"):
        members = [n for n in names if info[n]["half"] == half and all((n, m) in cell for m in shown)]
        if not members:
            continue
        families = [f for f in FAMILY_ORDER if any(info[n]["family"] == f for n in members)]
        lines += [f"{half.capitalize()} half ({_sets(len(members))}).", "",
                  "| family | sets | " + " | ".join(shown) + " |", "|---|---|" + "---|" * len(shown)]
        means = {}
        for fam in families:
            group = [n for n in members if info[n]["family"] == fam]
            means[fam] = [np.mean([cell[(n, m)] for n in group]) for m in shown]
            lines.append(f"| {fam} | {len(group)} | " + " | ".join(f"{v:.3f}" for v in means[fam]) + " |")
        lines += ["| **mean of family means** | | " + " | ".join(f"**{np.mean([means[f][i] for f in families]):.3f}**"
                                                            for i in range(len(shown))) + " |", ""]
    return lines


def _sets(count: int) -> str:
    return f"{count} set" + ("" if count == 1 else "s")


def write_table(csv_path: Path, md_path: Path) -> None:
    rows = list(csv.DictReader(csv_path.open()))
    methods = method_order(r["method"] for r in rows)
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    info = {r["dataset"]: r for r in rows}
    cell = cells(rows, "auroc")
    lines = ["# The panel: deepuad against its peers, its families weighted equally", "",
             "Regenerate: `python bench/panel.py` (see its docstring for the families, the split and the protocol; "
             "`--resume` continues an interrupted run). Fully unsupervised: no method sees a label. "
             "Every set subsampled to the rows stated, the same rows for every method; halves from panel.py's SPLIT_SEED.", ""]
    if "dagmm" not in methods:
        lines += [DAGMM_NOTE, ""]
    for half in ("tuning", "held-out"):
        half_names = [n for n in names if info[n]["half"] == half]
        present = [m for m in methods if any((n, m) in cell for n in half_names) and not m.startswith("ablation:")]
        if half_names:
            lines += [f"## {half.capitalize()} half", ""] + _half_summary(half_names, present, cell, info) + [""]
    lines += _ablation_table(names, methods, cell, info)
    methods = [m for m in methods if not m.startswith("ablation:")]
    lines += _synthetic_table(names, methods, cell, info) + _spike_table(names, methods, rows, info) + _share_table(names, methods, rows, info) + _f1_table(names, methods, rows, info)
    low = [n for n in names if any(cell.get((n, m), 1) < 0.5 for m in methods)]
    if low:
        lines += ["## Sets where some method is below 0.5 AUROC", "",
                  "The band is where a random ranking's AUROC falls 95 % of the time (`chance_band`); "
                  "an AUROC marked ▼ is below it: that method ranks the labelled anomalies as more normal than the "
                  "normal rows, and only the labels could tell it to turn the ranking round.", "",
                  "| data set | rows | anomalies | chance band | " + " | ".join(methods) + " |",
                  "|---|---|---|---|" + "---|" * len(methods)]
        for n in low:
            r = info[n]
            n_rows, share = int(r["rows_scored"]), float(r["anomaly_share"])
            texts = ["" if (n, m) not in cell else f"{cell[(n, m)]:.3f}" + (" ▼" if below_chance(cell[(n, m)], r) else "")
                     for m in methods]
            lines.append(f"| {n} | {n_rows} | {round(share * n_rows)} | 0.5 ± {chance_band(n_rows, share):.3f} | " + " | ".join(texts) + " |")
        lines.append("")
    lines += ["## Per data set: AUROC (mean over seeds)", "",
              "| data set | family | half | rows | d | anomalies | " + " | ".join(methods) + " |",
              "|---|---|---|---|---|---|" + "---|" * len(methods)]
    for n in names:
        best = max(cell[(n, m)] for m in methods if (n, m) in cell)
        texts = ["" if (n, m) not in cell else (f"**{cell[(n, m)]:.3f}**" if cell[(n, m)] == best else f"{cell[(n, m)]:.3f}")
                 for m in methods]
        r = info[n]
        lines.append(f"| {n} | {r['family']} | {r['half']} | {r['rows_fit']} | {r['features']} | {float(r['anomaly_share']):.3f} | "
                     + " | ".join(texts) + " |")
    lines += ["", "Seeds run per set: " + "; ".join(_seeds_per_set(rows, m, names) for m in methods) + "."]
    seconds = cells(rows, "seconds")
    lines += ["", "## Wall time per run in seconds (fit + score, mean over sets and seeds, one thread)", "",
              "| family | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for fam in [f for f in FAMILY_ORDER if any(info[n]["family"] == f for n in names)]:
        lines.append(_row(fam, ["" if not (v := [seconds[(n, m)] for n in names if info[n]["family"] == fam and (n, m) in seconds])
                                else f"{np.mean(v):.1f}" for m in methods]))
    md_path.write_text("\n".join(lines) + "\n")
