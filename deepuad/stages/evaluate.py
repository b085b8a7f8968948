"""``evaluate``: metrics of a scores artifact against ground truth, and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts.safe_read import finite_threshold
from deepuad.artifacts.scores import read_finite_scores
from deepuad.errors import DataError, InputError, OutputError
from deepuad.stages._common import no_progress, Progress


def evaluate(scores_path, labels_path=None, model_path=None, plots_dir=None, progress: Progress = no_progress) -> dict:
    """Metrics of a scores artifact against ground truth (from the scores file itself, or the
    ``y`` of a features file), and optionally PNG plots plus metrics.json in ``plots_dir``."""
    from deepuad.estimators.metrics import binary_metrics

    with art.open_artifact(scores_path, "scores") as f:
        scores, is_anomaly = read_finite_scores(art.read_array(f, "score"), scores_path), art.read_array(f, "is_anomaly")
        y = art.read_array(f, "y") if "y" in f else None
        threshold = finite_threshold(f, scores_path)
        inputs = art.inputs_of(f)
    source = str(scores_path)
    features_path = labels_path or inputs.get("features", {}).get("path")
    extra = {}
    if labels_path is not None or (features_path and Path(features_path).exists()):
        try:
            with art.open_artifact(features_path, "features") as f:
                if labels_path is not None:
                    if "y" not in f:
                        raise DataError("has no labels (y)", labels_path)
                    y, source = art.read_array(f, "y"), str(labels_path)
                extra = {name: art.read_array(f, name) for name in ("video",) if name in f}
        except InputError:
            if labels_path is not None:
                raise
    if y is not None and len(y) != len(scores):
        raise DataError(f"has {len(y)} labels but {scores_path} has {len(scores)} scores", source)
    summary: dict = {"scores": str(scores_path), "rows": len(scores), "threshold": threshold,
                     "flagged": int(is_anomaly.sum()), "labels_from": source if y is not None else None}
    if y is not None:
        summary.update(binary_metrics(y, scores, is_anomaly))
    if plots_dir is None:
        return summary
    from deepuad.stages import plots
    from deepuad.stages.inspect import describe

    plots_dir = Path(plots_dir)
    model_path = model_path or inputs.get("model", {}).get("path")
    for source in (scores_path, labels_path, model_path, features_path):
        # evaluate writes metrics.json and *.png there: an input with such a name would be replaced
        if source and (Path(source).name == "metrics.json" or Path(source).suffix.lower() == ".png") \
                and art.is_same_or_inside(Path(source), plots_dir):
            raise OutputError(f"holds {source}, an input of this command that the plots would replace; choose another folder",
                              plots_dir)
    try:
        plots_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create folder: {error.strerror}", plots_dir) from None
    written = [plots.score_histogram(scores, y, threshold, plots_dir)]
    if y is not None and len(np.unique(y)) == 2:
        written += plots.roc_pr_curves(y, scores, plots_dir)
    if model_path and Path(model_path).exists():
        written.append(plots.iteration_curves(describe(model_path)["iterations"], plots_dir))
    if "video" in extra:
        videos = np.asarray([v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in extra["video"]])
        for name in dict.fromkeys(videos.tolist()):
            rows = np.flatnonzero(videos == name)
            written.append(plots.video_scores(name, scores[rows], None if y is None else y[rows], plots_dir))
    summary["plots"] = written
    text = json.dumps(summary, indent=2, sort_keys=True, default=str, allow_nan=False)  # metrics are finite or None
    art.write_file_atomically(plots_dir / "metrics.json", lambda handle: handle.write(text.encode()))
    return summary
