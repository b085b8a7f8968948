"""``evaluate``: metrics of a scores artifact against ground truth, and PNG plots."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import scores as scores_artifact
from deepuad.artifacts.features import open_features
from deepuad.errors import DataError, InputError
from deepuad.stages._common import no_progress, Progress, recorded_file


def evaluate(scores_path, labels_path=None, model_path=None, plots_dir=None, progress: Progress = no_progress) -> dict:
    """Metrics of a scores artifact against ground truth (from the scores file itself, or the
    ``y`` of a features file), and optionally PNG plots plus metrics.json in ``plots_dir``.
    Without ground truth there is nothing to measure: DataError (exit 4)."""
    from deepuad.estimators.metrics import binary_metrics

    scored = scores_artifact.read(scores_path)
    scores, is_anomaly, y, threshold, inputs = (scored[key] for key in ("score", "is_anomaly", "y", "threshold", "inputs"))
    source = str(scores_path)
    features_path = labels_path or recorded_file(scores_path, inputs, "features")
    extra = {}
    if features_path is not None:
        try:
            with open_features(features_path, X=None) as features:
                if labels_path is not None:
                    y, source = features.labels(), str(labels_path)
                    if y is None:
                        raise DataError("has no labels (y)", labels_path)
                extra = {"video": features.column("video")}
        except InputError:
            if labels_path is not None:
                raise
    if y is None:
        raise DataError("has no labels (y) to evaluate against: pass `labels_path` FEATURES, a features file extracted with "
                        "`label_column` (or `annotations`, `labels`)", scores_path)
    if len(y) != len(scores):
        raise DataError(f"has {len(y)} labels but {scores_path} has {len(scores)} scores", source)
    summary: dict = {"scores": str(scores_path), "rows": len(scores), "threshold": threshold,
                     "flagged": int(is_anomaly.sum()), "labels_from": source}
    summary.update(binary_metrics(y, scores, is_anomaly))
    if plots_dir is not None:
        model_path = model_path or recorded_file(scores_path, inputs, "model")
        iterations = _iterations(model_path) if model_path is not None else None  # a wrong file fails before any plot
        summary.update(_draw(Path(plots_dir), scores, y, threshold, iterations, extra.get("video"), summary))
    return summary


def _iterations(model_path) -> list[dict]:
    from deepuad.stages.inspect import describe

    with art.open_artifact(model_path, "model"):  # InputError (exit 3) for another kind of artifact
        pass
    return describe(model_path)["iterations"]


def _draw(folder: Path, scores, y, threshold, iterations, videos, summary: dict) -> dict:
    """The figures and metrics.json, written into ``folder`` as one set (``plots.plot_folder``);
    at most MAX_PLOTS video figures, those of the videos with the highest peak score."""
    from deepuad.stages import plots

    with plots.plot_folder(folder) as draft:
        drawn = [plots.score_histogram(scores, y, threshold, draft)]
        if len(np.unique(y)) == 2:
            drawn += plots.roc_pr_curves(y, scores, draft)
        if iterations is not None:
            drawn.append(plots.iteration_curves(iterations, draft))
        left_out = 0
        if videos is not None:
            names = np.asarray([v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in videos])
            unique = list(dict.fromkeys(names.tolist()))
            peaks = {name: float(scores[names == name].max()) for name in unique}
            chosen = sorted(unique, key=lambda name: -peaks[name])[: plots.MAX_PLOTS]
            left_out = len(unique) - len(chosen)
            if left_out:
                warnings.warn(f"drew the {len(chosen)} videos with the highest peak score; {left_out} more are not drawn "
                              f"(at most {plots.MAX_PLOTS} video plots per run)")
            for name in chosen:
                rows = np.flatnonzero(names == name)
                drawn.append(plots.video_scores(name, scores[rows], y[rows], draft))
        added = {"plots": [str(folder / Path(path).name) for path in drawn], **({"plots_not_drawn": left_out} if left_out else {})}
        text = json.dumps({**summary, **added}, indent=2, sort_keys=True, default=str, allow_nan=False)  # metrics are finite or None
        art.write_file_atomically(draft / "metrics.json", lambda handle: handle.write(text.encode()))
    return added
