"""The ``report`` command and ``score --fail-on-drift``'s checks (registered on the app by
``deepuad.cli``): parse, validate, call ``deepuad.stages.report``, report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from deepuad.errors import DriftAbove, UsageError

REPORT_HELP = """One self-contained HTML page about a scores file, for the people who act on it: what was run
(inputs and their fingerprints, parameters, version, date, the model's training), the score
distribution and threshold, the flagged share against the training data's, the drift of the
scored data from the training data per column, the top rows in their original columns with the
columns that drove each score, the training story (kept rows and changes per re-selection, loss
per epoch) and, with labels, ROC and PR curves. No network: styles and charts are inline, and
the page loads nothing. Charts need matplotlib (pip install 'deepuad[plots]'); without it the
page says so and keeps its tables."""


def register(app: typer.Typer) -> None:
    @app.command(help=REPORT_HELP, epilog="Example: deepuad report demo/scores.h5 -o demo/report.html")
    def report(
        scores: Path = typer.Argument(..., help="A scores file from 'deepuad score' (or merge-scores, baseline)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="The HTML file [default: <scores stem>.report.html beside it]."),
        features: Optional[Path] = typer.Option(None, "--features", help="The features file the scores came from [default: the one the scores file records]."),
        model: Optional[Path] = typer.Option(None, "--model", help="The model [default: the one the scores file records; none for a baseline's scores]."),
        n: int = typer.Option(20, "-n", "--n", help="Top rows shown, highest score first."),
        k: int = typer.Option(3, "-k", help="Columns that drove each top row's score, shown per row."),
        force: bool = typer.Option(False, "--force", help="Use features (or a model) other than those the scores were made from."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the summary) on stdout."),
    ):
        from deepuad.cli.app import _run_stage
        from deepuad.stages.report import report as stage

        _run_stage(stage, as_json, "report", scores_path=scores, output=output, features_path=features, model_path=model,
                   n=n, k=k, force=force)


def check_drift_option(fail_on_drift: Optional[float], shard: Optional[str]) -> None:
    """Before scoring: --fail-on-drift needs a positive PSI and every row (no --shard)."""
    if fail_on_drift is None:
        return
    if not fail_on_drift > 0:
        raise UsageError(f"--fail-on-drift must be a positive PSI, e.g. 0.25, got {fail_on_drift}")
    if shard is not None:
        raise UsageError("--fail-on-drift needs every row: a shard measures no drift")


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
        raise DriftAbove(f"the data drifted from the model's training data: {named} moved beyond --fail-on-drift "
                         f"{fail_on_drift:g}; {flagged} of {rows} rows ({100 * flagged / rows:.2f}%) flagged, which a stale "
                         "model does not make meaningful (the scores file was written)", summary["output"])
