"""``deepuad score``: every row's score, and the exits for cron and CI (``--fail-above``,
``--fail-on-drift``), which are checked after the scores are written."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from deepuad.cli.app import app, run_stage
from deepuad.cli.options import (
    Device, Force, Json, Output, Threads, Threshold, parse_shard, spec_values, with_spec_options,
)
from deepuad.errors import AnomaliesAbove, DriftAbove, ParamError, UsageError
from deepuad.estimators.params import LIMITS, SCORE_BATCH_ROWS
from deepuad.stages.defaults import DEVICE


ScoresFile = Output("Output file [default: <features stem>.scores.h5].")
ForceEncoding = Force("Score features encoded differently from the training data anyway.")


@app.command(epilog="Examples: deepuad score kdd.model.h5 new.features.h5 --contamination 0.2 --json ; "
             "deepuad score kdd.model.h5 new.features.h5 --shard 0/4  (then: deepuad merge-scores new.scores.shard-*-of-4.h5)")
@with_spec_options("score", after="output")
def score(
    model_path: Annotated[Path, typer.Argument(metavar="model", help="A model file from 'deepuad train'.")],
    features_path: Annotated[Path, typer.Argument(
        metavar="features", help="Features to score (the training data, or new data made with extract --like).")],
    output: ScoresFile = None,
    threshold: Threshold = None,
    device: Device = DEVICE,
    threads: Threads = None,
    force: ForceEncoding = False,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", help="I/N: score only the I-th of N row ranges (0 <= I < N) into <features stem>.scores.shard-I-of-N.h5; "
        "'deepuad merge-scores' joins the N files.")] = None,
    batch_rows: Annotated[int, typer.Option(
        "--batch-rows", max=LIMITS["batch_rows"], help="Rows scored per batch (bounds memory). Shards and the unsharded run "
        "they should equal need the same value.")] = SCORE_BATCH_ROWS,
    fail_above: Annotated[Optional[float], typer.Option(
        "--fail-above", help="Exit 8 (after writing the scores) when more than this share of rows score above --threshold, "
        "e.g. 0.05: for cron and CI alerts.")] = None,
    fail_on_drift: Annotated[Optional[float], typer.Option(
        "--fail-on-drift", help="Exit 9 (after writing the scores) when a column drifted from the training data beyond "
        "this PSI, e.g. 0.25: a stale model, not a bad night. Checked before --fail-above.")] = None,
    as_json: Json = False,
    **options,  # the spec's options (with_spec_options)
):
    """Score every row with the model's score (train --score), higher = more anomalous. The rows the model was trained on
    were scored by train already: their scores are taken from the model (the same numbers)."""
    from deepuad.stages.score import score as stage

    check_fail_options(fail_above, threshold, shard)
    check_drift_option(fail_on_drift, shard)
    summary = run_stage(stage, as_json, "score", model_path=model_path, features_path=features_path, output=output,
                        threshold=threshold, force=force, device=device, threads=threads, batch_rows=batch_rows,
                        shard=parse_shard(shard), need_drift=fail_on_drift is not None, **spec_values("score", options))
    check_fail_on_drift(summary, fail_on_drift)
    check_fail_above(summary, fail_above)


def check_fail_options(fail_above: Optional[float], threshold: Optional[float], shard: Optional[str]) -> None:
    """Before scoring: --fail-above needs a share in [0, 1), a fixed --threshold and no --shard."""
    if fail_above is None:
        return
    if not 0 <= fail_above < 1:
        raise ParamError("fail_above", f"must be a share in [0, 1), e.g. 0.05, got {fail_above}")
    if shard is not None:
        raise UsageError("`fail_above` needs every row: use it with merge-scores' output, not with `shard`")
    if threshold is None:
        raise UsageError("`fail_above` needs `threshold` T: with a contamination the flagged share IS that contamination. "
                         "Take T from the training data's scores (deepuad inspect train.scores.h5 --json: summary.threshold)")


def check_drift_option(fail_on_drift: Optional[float], shard: Optional[str]) -> None:
    """Before scoring: --fail-on-drift needs a positive PSI and every row (no --shard)."""
    if fail_on_drift is None:
        return
    if not fail_on_drift > 0:
        raise ParamError("fail_on_drift", f"must be a positive PSI, e.g. 0.25, got {fail_on_drift}")
    if shard is not None:
        raise UsageError("`fail_on_drift` needs every row: a shard measures no drift")


def check_fail_above(summary: dict, fail_above: Optional[float]) -> None:
    """After scoring (the scores file is written): AnomaliesAbove (exit 8) when the flagged
    share exceeds ``fail_above``."""
    if fail_above is None or summary.get("skipped"):
        return
    rows, flagged = int(summary["rows"]), int(summary["anomalies_flagged"])
    if rows and flagged / rows > fail_above:
        raise AnomaliesAbove(f"{flagged} of {rows} rows ({100 * flagged / rows:.2f}%) score above the threshold "
                             f"{summary['threshold']:.6g}, more than `fail_above` {fail_above:g} (the scores file was written)",
                             summary["output"])


def check_fail_on_drift(summary: dict, fail_on_drift: Optional[float]) -> None:
    """After scoring (the scores file is written): DriftAbove (exit 9) naming the columns whose
    PSI passes ``fail_on_drift``."""
    if fail_on_drift is None or summary.get("skipped") or "drift_max_psi" not in summary:
        return
    if summary["drift_max_psi"] > fail_on_drift:
        from deepuad.artifacts.scores import read_drift

        moved = [c for c in read_drift(summary["output"])["columns"] if c["psi"] > fail_on_drift]
        named = ", ".join(f"{c['column']} (PSI {c['psi']:.3g})" for c in moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
        rows, flagged = int(summary["rows"]), int(summary["anomalies_flagged"])
        raise DriftAbove(f"the data drifted from the model's training data: {named} moved beyond `fail_on_drift` "
                         f"{fail_on_drift:g}; {flagged} of {rows} rows ({100 * flagged / rows:.2f}%) flagged, which a stale "
                         "model does not make meaningful (the scores file was written)", summary["output"])
