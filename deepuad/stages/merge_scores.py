"""``merge-scores``: the shards of one ``score --shard I/N`` run -> the scores artifact an
unsharded ``score`` would have written."""

from __future__ import annotations

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import shard as shard_artifact
from deepuad.artifacts.scores import write_scores
from deepuad.errors import InputError, RequestError, StaleError
from deepuad.stages._common import check_threshold_options, default_output, no_progress, Progress


def merge_scores(shard_paths, output=None, contamination=None, threshold=None, progress: Progress = no_progress) -> dict:
    """The scores_shard artifacts of one ``score --shard I/N`` run -> the scores artifact that
    ``score`` writes for all rows (same datasets, threshold, metrics and inputs). Every shard's
    attributes (and y, a byte a row) are read and checked first, so a missing shard, a duplicate
    or a shard of another run is refused before anything is written; then the scores are
    streamed into the output one shard at a time."""
    check_threshold_options(contamination, threshold)
    if not shard_paths:
        raise RequestError("give the shard files to merge")
    if output is not None:
        output = art.check_output_path(output, shard_paths)
    shards = [shard_artifact.read(path) for path in shard_paths]
    first = shards[0]
    for shard in shards[1:]:
        _require_same_run(shard, first)
    by_index: dict[int, dict] = {}
    for shard in shards:
        if shard["index"] in by_index:
            raise StaleError(f"is shard {shard['index']} of {shard['count']}, as is {by_index[shard['index']]['path']}; "
                             "give each shard once", shard["path"])
        by_index[shard["index"]] = shard
    count = first["count"]
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        raise InputError(f"shard(s) {', '.join(map(str, missing))} of {count} missing (given: {', '.join(map(str, sorted(by_index)))}); "
                         "merge-scores needs every shard of the run", first["path"])
    ordered = [by_index[i] for i in range(count)]
    if contamination is None and threshold is None:  # the options the shards were scored with
        for shard in shards[1:]:
            if (shard["contamination"], shard["threshold"]) != (first["contamination"], first["threshold"]):
                raise StaleError(f"was scored with other `contamination`/`threshold` options than {first['path']}; "
                                 "pass `contamination` or `threshold` to merge-scores", shard["path"])
        contamination, threshold = first["contamination"], first["threshold"]
    output = output or art.check_output_path(default_output(ordered[0]["path"], "scores"), shard_paths)
    n_rows = first["n_rows_total"]
    params = {"contamination": contamination, "threshold": threshold, "device": ",".join(sorted({s["device"] for s in shards})),
              "batch_rows": first["batch_rows"], "shards": count}
    inputs = {role: ordered[0]["inputs"][role] for role in ("model", "features")}
    y = np.concatenate([shard["y"] for shard in ordered]) if first["y"] is not None else None

    def chunks():
        for shard in ordered:
            again = shard_artifact.read(shard["path"], scores=True)
            if (again["row_start"], again["row_stop"]) != (shard["row_start"], shard["row_stop"]):
                raise InputError("changed while merging", shard["path"])  # rewritten since it was checked
            yield shard["row_start"], again["score"]

    summary = write_scores(output, params, inputs, n_rows, chunks(), y, contamination, threshold, progress, "merging shards")
    summary["shards"] = count
    return summary


def _require_same_run(shard: dict, first: dict) -> None:
    """StaleError unless ``shard`` comes from the same scoring run (model, features, N) as ``first``."""
    for role in ("model", "features"):
        theirs, ours = shard["inputs"][role]["fingerprint"], first["inputs"][role]["fingerprint"]
        if theirs != ours:
            raise StaleError(f"was scored with a different {role} than {first['path']} (fingerprint {theirs[:12]} vs {ours[:12]}); "
                             "merge the shards of one run", shard["path"])
    for key, what in (("count", "shard count"), ("n_rows_total", "row count"), ("batch_rows", "batch size")):
        if shard[key] != first[key]:
            raise StaleError(f"has {what} {shard[key]} but {first['path']} has {first[key]}; merge the shards of one run "
                             "(same `shard` N and `batch_rows`)", shard["path"])
    if (shard["y"] is None) != (first["y"] is None):
        raise InputError(f"{'has' if shard['y'] is not None else 'has no'} labels (y) unlike {first['path']} (corrupt?)", shard["path"])
