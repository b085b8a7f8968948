"""Writes the version-1 artifacts of this folder and ``expected.json``, what the commands gave for
them (README.md says with which code). A small run on rows of sample_data/kddcup99_5k.csv.gz:

    kdd.features.h5, new.features.h5 (extract --like)   rows 1-200 and 100 of 201-1200, an id column
    kdd.clusters.h5                                      cluster
    kdd.model.h5                                         train, 4 epochs (--score distance)
    kdd.model.checkpoint.h5                              the same run stopped after its first re-selection
    new.scores.h5, new.scores.shard-{0,1}-of-2.h5        score of new.features.h5, and in 2 shards
    kdd.legacy.model.h5, new.legacy.scores.h5            kdd.model.h5 without the fields that models
                                                         made before them lack, and its scores
    kdd.cosine.model.h5, new.cosine.scores.h5            a --score cosine model without score parts,
                                                         contamination estimate, training scores and drift
                                                         reference (the oldest models), and its scores

    python tests/golden/v1/make_v1.py
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
from pathlib import Path

import h5py

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
import helpers  # noqa: E402

LABELS = ["--label-column", "label", "--anomaly-values", "smurf.", "--id-column", "service"]
# the score without the forest, and a small reference: files of tens of KB
TRAIN = {"epochs": 4, "r": 2, "layers": (8, 4), "batch_size": 32, "seed": 0, "threads": 1, "device": "cpu",
         "score": "distance", "reference_size": 50}
SCORE = ["--batch-rows", "50", "--threads", "1", "--device", "cpu"]


def tables(folder: Path) -> None:
    """kdd.csv (rows 1-200 of the sample) and new.csv (every 10th row of rows 201-1200)."""
    with gzip.open(REPO / "sample_data" / "kddcup99_5k.csv.gz", "rt") as source:
        lines = source.read().splitlines()[:1201]
    (folder / "kdd.csv").write_text("\n".join(lines[:201]) + "\n")
    (folder / "new.csv").write_text("\n".join(lines[:1] + lines[201::10]) + "\n")


def cli(*args) -> str:
    code, out, err = helpers.cli(*args)
    if code != 0:
        raise SystemExit(f"deepuad {' '.join(map(str, args))} exited {code}: {err}")
    return out


def train(output: str, stop_in_epoch: int | None = None, **options) -> dict:
    """``train`` of kdd.features.h5 and kdd.clusters.h5 (TRAIN, ``options``); with ``stop_in_epoch``
    stopped there as by Ctrl-C, which leaves the run's checkpoint (kdd.model.checkpoint.h5)."""
    from deepuad.stages.train import train

    def progress(description, completed, total, status=None, line=None):
        if line is None and completed == stop_in_epoch:
            raise KeyboardInterrupt

    try:
        return train("kdd.features.h5", "kdd.clusters.h5", output, progress=progress, **{**TRAIN, **options})
    except KeyboardInterrupt:
        return {}


def edit(path: str, change) -> None:
    """``change(h5py.File)`` applied, and the file fingerprinted again."""
    from deepuad import artifacts as art

    with h5py.File(path, "a") as f:
        change(f)
        f.attrs["fingerprint"] = art.content_fingerprint(f)


def _json_attr(f, name: str, drop: tuple[str, ...]) -> None:
    value = json.loads(f.attrs[name])
    f.attrs[name] = json.dumps({key: item for key, item in value.items() if key not in drop})


def legacy(f) -> None:
    """What models made before score weights, the kept-reference mask, the k-NN part's own rows,
    the contamination estimate and the recorded n_neighbors, p0 and init_by lack."""
    for name in ("scorer/score_weights", "scorer/reference_kept", "scorer/knn/reference"):
        del f[name]
    del f.attrs["contamination_estimate"]
    _json_attr(f, "state", ("contamination_estimate",))
    _json_attr(f, "params", ("n_neighbors", "p0", "init_by"))


def oldest(f) -> None:
    """What the first models (cosine only) lack: score parts, contamination estimate, training
    scores, drift reference, and the recorded score and n_neighbors."""
    for name in ("training_scores", "drift_reference"):
        del f[name]
    for name in ("contamination_estimate", "training_scores_batch_rows"):
        del f.attrs[name]
    _json_attr(f, "state", ("contamination_estimate", "score_parts"))
    _json_attr(f, "params", ("score", "n_neighbors"))


def main() -> None:
    os.chdir(HERE)
    for path in HERE.glob("*.h5"):
        path.unlink()
    tables(HERE)
    expected = {}
    expected["extract"] = cli("extract", "kdd.csv", "-o", "kdd.features.h5", *LABELS, "--compress", "--json")
    expected["extract_like"] = cli("extract", "new.csv", "--like", "kdd.features.h5", "-o", "new.features.h5", *LABELS,
                                   "--compress", "--json")
    expected["cluster"] = cli("cluster", "kdd.features.h5", "-o", "kdd.clusters.h5", "--clusters", "4", "--seed", "0",
                              "--json")
    expected["train"] = json.dumps(train("kdd.model.h5"))
    train("kdd.model.h5", stop_in_epoch=3)
    assert Path("kdd.model.checkpoint.h5").exists()
    expected["score"] = cli("score", "kdd.model.h5", "new.features.h5", "-o", "new.scores.h5", *SCORE, "--json")
    for i in range(2):
        cli("score", "kdd.model.h5", "new.features.h5", "--shard", f"{i}/2", "-o", f"new.scores.shard-{i}-of-2.h5", *SCORE)
    expected["merge"] = cli("merge-scores", "new.scores.shard-0-of-2.h5", "new.scores.shard-1-of-2.h5", "-o",
                            "merged.scores.h5", "--json")
    os.unlink("merged.scores.h5")
    shutil.copyfile("kdd.model.h5", "kdd.legacy.model.h5")
    edit("kdd.legacy.model.h5", legacy)
    expected["score_legacy"] = cli("score", "kdd.legacy.model.h5", "new.features.h5", "-o", "new.legacy.scores.h5", *SCORE,
                                   "--json")
    train("kdd.cosine.model.h5", score="cosine")
    edit("kdd.cosine.model.h5", oldest)
    expected["score_cosine"] = cli("score", "kdd.cosine.model.h5", "new.features.h5", "-o", "new.cosine.scores.h5", *SCORE,
                                   "--json")
    expected["top"] = cli("top", "new.scores.h5", "-n", "5", "--explain", "3", "--json")
    for model in ("kdd.model.h5", "kdd.legacy.model.h5", "kdd.cosine.model.h5"):
        expected[f"explain {model}"] = cli("explain", model, "new.features.h5", "--top", "3", "-k", "3", "--json")
    expected["evaluate"] = cli("evaluate", "new.scores.h5", "--json")
    for path in sorted(HERE.glob("*.h5")):
        expected[f"inspect {path.name}"] = cli("inspect", path.name, "--json")
    (HERE / "expected.json").write_text(json.dumps({name: json.loads(text) for name, text in expected.items()}, indent=1,
                                                   sort_keys=True) + "\n")
    for name in ("kdd.csv", "new.csv"):
        os.unlink(name)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
