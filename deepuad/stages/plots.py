"""PNG figures for `deepuad evaluate --plots` and `explain --plots` (matplotlib, headless; an
optional extra), and the folder they go to.

Each figure function takes plain arrays and a path, draws one figure and writes it; nothing
else. ``plot_folder`` makes the set of files atomic: the figures are drawn into a temporary
folder beside the target, which is renamed into place only when all of them are written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Iterator

import numpy as np

from deepuad.errors import OutputError, ParamError
from deepuad.signals import placing_output, raise_held_back

# at most this many figures of one kind per run (one per video, one per explained row): a file
# naming 2,000 videos must not draw 2,000 PNGs. Those left out are counted in the summary.
MAX_PLOTS = 50

PLOT_FILES = (".png", ".json")  # what a plots folder holds: figures and metrics.json


def _replaceable(folder: Path) -> None:
    """OutputError unless ``folder`` is missing or a folder of earlier plots (figures and
    metrics.json only), which a new run replaces whole. Anything else in it would be lost."""
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        return
    except OSError as error:
        raise OutputError(f"cannot create folder: {error.strerror or error}", folder) from None
    if not stat.S_ISDIR(info.st_mode):
        raise OutputError("cannot create folder: it exists and is not a folder", folder)
    others = [entry.name for entry in os.scandir(folder)
              if not (entry.is_file(follow_symlinks=False) and Path(entry.name).suffix.lower() in PLOT_FILES)]
    if others:
        raise OutputError(f"holds {len(others)} entries that are not plots (e.g. {others[0]}), and `plots_dir` replaces the "
                          "folder whole: choose a new or empty folder", folder)


@contextlib.contextmanager
def plot_folder(folder: Path) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to draw into, renamed to ``folder`` when the block
    ends without error and removed otherwise: an interrupted or failed run leaves no partial
    folder, and an earlier one (checked by ``_replaceable``) stays as it was."""
    folder = Path(folder)
    parent = folder.parent if str(folder.parent) else Path(".")
    _replaceable(folder)
    if not parent.is_dir():
        raise OutputError(f"cannot create folder: folder {parent} does not exist", folder)
    temporary = parent / f".{folder.name[:200]}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        temporary.mkdir()
    except OSError as error:
        raise OutputError(f"cannot create folder: {error.strerror or error}", folder) from None
    try:
        yield temporary
        _replaceable(folder)  # again: something may have appeared there while the plots were drawn
        raise_held_back()  # a Ctrl-C or SIGTERM held back while drawing: the old folder stays
        placing_output()  # no signal between the two renames
        old = None
        if folder.exists():
            old = temporary.with_name(temporary.name + ".old")
            os.rename(folder, old)
        try:
            os.rename(temporary, folder)
        except BaseException:
            if old is not None:
                os.rename(old, folder)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        raise OutputError(f"cannot write the plots: {error.strerror or error}", folder) from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # headless: cron jobs and servers have no display
        import matplotlib.pyplot as plt
    except ImportError:
        raise ParamError("plots_dir", "needs matplotlib: pip install 'deepuad[plots]'") from None
    return plt


def _save(fig, path: Path) -> str:
    from deepuad.artifacts import write_file_atomically

    fig.tight_layout()
    try:
        write_file_atomically(path, lambda handle: fig.savefig(handle, dpi=120, format="png"))
    finally:
        _pyplot().close(fig)
    return str(path)


def roc_pr_curves(y: np.ndarray, scores: np.ndarray, folder: Path, label: str = "deepuad") -> list[str]:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    plt = _pyplot()
    written = []
    fpr, tpr, _ = roc_curve(y, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"{label} (AUROC {roc_auc_score(y, scores):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    written.append(_save(fig, folder / "roc.png"))
    precision, recall, _ = precision_recall_curve(y, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(recall, precision, label=f"{label} (AUPRC {average_precision_score(y, scores):.3f})")
    ax.axhline(np.mean(y), ls=":", c="grey", label=f"chance ({np.mean(y):.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    written.append(_save(fig, folder / "pr.png"))
    return written


def score_histogram(scores: np.ndarray, y: np.ndarray | None, threshold: float, folder: Path) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(scores, bins=60)
    if y is None:
        ax.hist(scores, bins=bins, color="C0", alpha=0.8, label="all rows")
    else:
        ax.hist(scores[y == 0], bins=bins, alpha=0.6, label="normal (y = 0)", density=True)
        ax.hist(scores[y == 1], bins=bins, alpha=0.6, label="anomaly (y = 1)", density=True)
    ax.axvline(threshold, c="k", ls="--", label=f"threshold {threshold:.4g}")
    ax.set(xlabel="score (higher = more anomalous)", ylabel="density" if y is not None else "rows", title="scores")
    ax.set_yscale("log")
    ax.legend()
    return _save(fig, folder / "score_histogram.png")


def iteration_curves(iterations: list[dict], folder: Path) -> str:
    """Paper Fig. 5: per re-selection, set size and changes, and metrics when labels exist."""
    plt = _pyplot()
    t = [row["iteration"] for row in iterations]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True)
    top.plot(t, [row["n_selected"] for row in iterations], "o-", label="selected")
    top.plot(t[1:], [row["n_changed"] for row in iterations[1:]], "s-", label="changed vs previous")
    top.set(ylabel="rows", title="training-set selection per iteration")
    top.legend()
    for key in ("auroc", "auprc", "f1"):
        values = [row.get(key) for row in iterations]
        if any(v is not None and np.isfinite(v) for v in values):
            bottom.plot(t, [np.nan if v is None else v for v in values], "o-", label=key.upper())
    from matplotlib.ticker import MaxNLocator

    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set(xlabel="iteration (0 = initial clustering)", ylabel="score on the training data", ylim=(0, 1.02))
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend()
    return _save(fig, folder / "iterations.png")


def video_scores(video: str, scores: np.ndarray, y: np.ndarray | None, folder: Path) -> str:
    """Paper Fig. 3: normalised score along a video's segments, annotated anomalies shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.8))
    span = scores.max() - scores.min()
    ax.plot((scores - scores.min()) / (span if span > 0 else 1), c="C0", label="score (normalised)")
    if y is not None:
        for start, stop in _runs(y):
            ax.axvspan(start - 0.5, stop - 0.5, color="C1", alpha=0.3, lw=0)
    ax.set(xlabel="segment", ylabel="score", title=f"{video}" + ("  (shaded: annotated anomaly)" if y is not None else ""), ylim=(0, 1.05))
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in video)[:150]  # names come from the data
    return _save(fig, folder / f"video_{safe}.png")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of ones."""
    padded = np.concatenate([[0], np.asarray(mask, int), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2]))
