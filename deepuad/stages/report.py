"""``report``: one self-contained HTML page about a scores file, for the people who act on a run
and are not at the terminal. It gathers what the other stages already answer (``top`` with
``--explain``, ``inspect``, ``evaluate``'s curves, the drift ``score`` stored) and renders
``report.html.j2`` (jinja2, every value escaped: the rows come from someone else's data).

Self-contained means it opens offline and loads nothing: styles are inline, charts are inline
SVG (matplotlib, text left as text so no font is embedded or fetched), and the page's
Content-Security-Policy forbids every request, so a browser would refuse one rather than make it.
Without matplotlib the page says so where each chart would be and keeps its tables.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from deepuad import __version__, artifacts as art
from deepuad.artifacts import model as model_artifact
from deepuad.artifacts import scores as scores_artifact
from deepuad.errors import RequestError
from deepuad.estimators.drift import ACT_ABOVE
from deepuad.stages._common import no_progress, Progress
from deepuad.stages.defaults import REPORT

# points kept on a ROC or PR curve: enough to draw it, few enough that a million rows stay small
CURVE_POINTS = 500
NO_CHARTS = "charts need matplotlib: pip install 'deepuad[plots]'"
# the drift chart's log axis starts here (a PSI of 0 has no logarithm)
LOWEST_PSI_SHOWN = 1e-3
# PSI below this: stable (the usual reading; ACT_ABOVE is where a shift is worth acting on)
STABLE_BELOW = 0.1


def report(scores_path, output=None, features_path=None, model_path=None, n: int = REPORT["n"], k: int = REPORT["k"],
           force: bool = False, progress: Progress = no_progress) -> dict:
    """Write the HTML report of ``scores_path`` (default ``<scores stem>.report.html`` beside it);
    the top ``n`` rows come from its features file, each with the ``k`` columns that drove its
    score when the model is known. Returns a summary."""
    from deepuad.stages import answers
    from deepuad.stages.inspect import describe

    if n < 1 or k < 1:
        raise RequestError(f"`n` and `k` must be >= 1, got {n} and {k}")
    output = art.check_output_path(output or _default_output(scores_path), [scores_path, features_path, model_path])
    scored = scores_artifact.read(scores_path)
    scores, threshold, is_anomaly, y, inputs = (scored[key] for key in ("score", "threshold", "is_anomaly", "y", "inputs"))
    has_model = model_path is not None or "model" in inputs
    progress("report", 0, 3)
    top = answers.top(scores_path, features_path, n, False, force, k if has_model else 0, model_path)
    top["rows"] = answers.row_dicts(top)
    progress("report", 1, 3)
    model = None
    if has_model:
        model_path = answers._recorded(inputs, "model", model_path, scores_path)
        model = _model_story(model_path, threshold)
    scored = describe(scores_path)
    files = [_envelope(scores_path, "scores")]
    files += [_envelope(top["features"], "features")] + ([_envelope(model_path, "model")] if model else [])
    drift = scored.get("drift")
    charts = _charts(scores, y, threshold, model, drift)
    progress("report", 2, 3)
    flagged = int(is_anomaly.sum())
    context = {
        "title": f"deepuad report: {Path(scores_path).name}", "generated": _now(), "version": __version__,
        "files": files, "rows": len(scores), "flagged": flagged, "flagged_share": flagged / len(scores),
        "threshold": threshold, "model": model, "top": top, "drift": drift, "drift_level": _drift_level(drift), "act_above": ACT_ABOVE, "stable_below": STABLE_BELOW,
        "metrics": {key: value for key, value in scored["summary"].items()
                    if key in ("auroc", "auprc", "precision", "recall", "f1", "anomaly_share")} if y is not None else None,
        "charts": charts, "no_charts": NO_CHARTS,
    }
    html = _render(context)
    written = art.write_file_atomically(output, lambda handle: handle.write(html.encode()), [scores_path, top["features"], model_path])
    progress("report", 3, 3)
    return {"output": str(written), "bytes": len(html.encode()), "rows": len(scores), "flagged": flagged,
            "top_rows": top["shown"], "charts": charts is not None,
            **({"drift_max_psi": drift["max_psi"]} if drift and drift.get("measured") else {})}


def _default_output(scores_path) -> Path:
    """``day.scores.h5`` -> ``day.report.html`` and ``run``'s ``scores.h5`` -> ``report.html``, beside it."""
    path = Path(scores_path)
    stem = path.name[: -len(".h5")] if path.name.endswith(".h5") else path.name
    if stem == "scores":
        return path.with_name("report.html")
    stem = stem[: -len(".scores")] if stem.endswith(".scores") else stem
    return path.with_name(f"{stem}.report.html")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _envelope(path, role: str) -> dict:
    """What a file is and where it came from: kind, fingerprint, creation, its own inputs."""
    with art.open_artifact(path) as f:
        return {"role": role, "path": str(path), "kind": str(f.attrs["deepuad_kind"]),
                "fingerprint": str(f.attrs["fingerprint"]), "created": str(f.attrs["created"]),
                "version": str(f.attrs["deepuad_version"]), "params": art.params_of(f),
                "inputs": {name: source.get("fingerprint") or source.get("sha256") or "" for name, source in art.inputs_of(f).items()
                           if isinstance(source, dict)}}


def _model_story(model_path, threshold: float) -> dict:
    """The model's training summary, its re-selections (the paper's Fig. 5), its loss per epoch
    and the share of its training rows that score above ``threshold``."""
    from deepuad.stages.inspect import describe

    info = describe(model_path)
    arrays, _, _, meta = model_artifact.read(model_path, training_scores=True)
    losses, training = arrays["epoch_losses"].astype(np.float64), meta["training_scores"]
    training_share = None if training is None or not len(training) else float(np.mean(training > threshold))
    return {"summary": info["summary"], "iterations": info["iterations"], "losses": losses,
            "training_scores": training, "training_flagged_share": training_share}


def _drift_level(drift: dict | None) -> str | None:
    if not drift or not drift.get("measured"):
        return None
    if drift["max_psi"] > ACT_ABOVE:
        return "drifted"
    return "moderate" if drift["max_psi"] >= STABLE_BELOW else "stable"


# =========================================================================== charts
def _charts(scores, y, threshold, model, drift) -> dict | None:
    """Inline SVG charts by name, or None (with a warning) where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(f"the report has no charts: {NO_CHARTS}")
        return None
    style = {"svg.fonttype": "none", "svg.hashsalt": "deepuad", "font.size": 11, "figure.dpi": 72}
    charts = {}
    with matplotlib.rc_context(style):
        charts["scores"] = _svg(plt, _score_chart(plt, scores, threshold, model))
        if drift and drift.get("measured") and drift["columns"]:
            charts["drift"] = _svg(plt, _drift_chart(plt, drift))
        if model:
            charts["training"] = _svg(plt, _training_chart(plt, model))
        if y is not None and len(np.unique(y)) == 2:
            charts["curves"] = _svg(plt, _curves_chart(plt, y, scores))
    return charts


def _svg(plt, fig) -> str:
    """The figure as an <svg> element to inline (the XML prologue and DOCTYPE dropped)."""
    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _score_chart(plt, scores, threshold, model):
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    training = model["training_scores"] if model else None
    both = scores if training is None else np.concatenate([scores, training])
    bins = np.histogram_bin_edges(both, bins=50)
    ax.hist(scores, bins=bins, density=True, alpha=0.7, label="these rows")
    if training is not None and len(training):
        ax.hist(training, bins=bins, density=True, histtype="step", lw=1.5, color="k", label="training rows")
    ax.axvline(threshold, color="C3", ls="--", label=f"threshold {threshold:.4g}")
    ax.set(xlabel="score (higher = more anomalous)", ylabel="density (log)", yscale="log")
    ax.legend(fontsize=8)
    return fig


def _drift_chart(plt, drift):
    columns = drift["columns"][:15][::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.28 * len(columns)))
    values = [max(c["psi"], LOWEST_PSI_SHOWN) for c in columns]
    colours = ["C3" if v > ACT_ABOVE else "C1" if v >= STABLE_BELOW else "C2" for v in values]
    ax.barh([c["column"] for c in columns], values, color=colours)
    for level in (STABLE_BELOW, ACT_ABOVE):
        ax.axvline(level, color="grey", ls=":", lw=1)
    ax.set(xlabel="PSI against the training data (log scale)", xscale="log", xlim=(LOWEST_PSI_SHOWN, max(1.0, 2 * max(values))))
    return fig


def _training_chart(plt, model):
    iterations = model["iterations"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 3.0))
    t = [row["iteration"] for row in iterations]
    left.plot(t, [row["n_selected"] for row in iterations], "o-", label="kept")
    left.plot(t[1:], [row["n_changed"] for row in iterations[1:]], "s-", label="changed")
    left.set(xlabel="re-selection (0 = clustering)", ylabel="rows", title="training set")
    left.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator

    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    losses = model["losses"]
    right.plot(np.arange(1, len(losses) + 1), losses, "-", color="C2")
    right.set(xlabel="epoch", ylabel="mean loss", title="loss per epoch")
    return fig


def _curves_chart(plt, y, scores):
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, (roc, pr) = plt.subplots(1, 2, figsize=(7.2, 3.4))
    fpr, tpr, _ = roc_curve(y, scores)
    keep = _thin(len(fpr))
    roc.plot(fpr[keep], tpr[keep])
    roc.plot([0, 1], [0, 1], ls=":", c="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    precision, recall, _ = precision_recall_curve(y, scores)
    keep = _thin(len(recall))
    pr.plot(recall[keep], precision[keep])
    pr.axhline(float(np.mean(y)), ls=":", c="grey")
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    return fig


def _thin(n: int) -> np.ndarray:
    """At most CURVE_POINTS indices of n, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(np.int64))


# =========================================================================== page
def _render(context: dict) -> str:
    import jinja2
    from markupsafe import Markup

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["num"] = _number
    environment.filters["pct"] = lambda value: "–" if value is None else f"{100 * value:.2f} %"
    environment.filters["short"] = lambda text: str(text)[:12]
    environment.filters["json"] = lambda value: json.dumps(value, sort_keys=True, default=str)
    template = environment.from_string(resources.files("deepuad.stages").joinpath("report.html.j2").read_text("utf-8"))
    charts = context["charts"]
    if charts is not None:  # our own SVG, from matplotlib (which escapes its text): inlined as markup
        context = {**context, "charts": {name: Markup(svg) for name, svg in charts.items()}}
    return template.render(**context)


def _number(value) -> str:
    """A cell: a float to 4 significant digits, a missing value as a dash."""
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
