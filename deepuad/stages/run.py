"""``run``: extract, cluster, train and score into one folder. A stage whose artifact is already
there with the same parameters and inputs is skipped, and a checkpointed model resumes, so
running again after a crash continues where it stopped."""

from __future__ import annotations

from pathlib import Path

from deepuad import artifacts as art
from deepuad.errors import OutputError, ParamError
from deepuad.estimators.params import DEFAULTS, check_params, options_of
from deepuad.stages._common import check_threshold_options, no_progress, Progress, require_exists
from deepuad.stages.defaults import DEVICE

ARTIFACTS = ("features", "clusters", "model", "scores")  # the files it writes, <kind>.h5 in the folder, in order


def run(
    input_path,
    output_dir,
    categorical=(), drop=(), label_column=None, anomaly_values=None, scale=None, missing=None, id_columns=(),  # extract's
    contamination=None,  # score's
    device=DEVICE,
    threads=None,
    progress: Progress = no_progress,
    **params,
) -> dict:
    """The four stages' summaries, by stage. ``params``: DeepUAD's parameters that cluster and train
    take (``params.options_of("run")``), each checked, as every other value, before the folder is
    made: a refused value leaves nothing behind."""
    from deepuad.inputs.arrays import SCALERS
    from deepuad.stages.cluster import cluster
    from deepuad.stages.extract import extract
    from deepuad.stages.score import score
    from deepuad.stages.train import train

    offered = {param.name for param in options_of("run")} - {"contamination"}
    unknown = sorted(set(params) - offered)
    if unknown:
        raise TypeError(f"run() got unexpected parameters: {', '.join(unknown)}")
    check_params(params)
    check_threshold_options(contamination, None)
    if scale is not None and scale not in SCALERS:
        raise ParamError("scale", f"must be one of {', '.join(SCALERS)}, got {scale!r}")
    p, p0 = params.get("p", DEFAULTS["p"]), params.get("p0", DEFAULTS["p0"])
    if not p < p0:
        raise ParamError("p", f"must be below `p0` ({p0:g}): re-selection is stricter than the initial one, got {p!r}")

    input_path = require_exists(input_path)
    output_dir = Path(output_dir)
    f, c, m, s = (output_dir / f"{kind}.h5" for kind in ARTIFACTS)
    for target in (output_dir, f, c, m, s):  # before the folder is made: a refused run leaves nothing behind
        if art.is_same_or_inside(target, input_path):
            raise OutputError(f"is, or is inside, {input_path}, an input of this command; writing there would change it: "
                              "choose another folder", target)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create folder: {error.strerror}", output_dir) from None

    def of(stage: str) -> dict:
        return {param.name: params[param.name] for param in options_of(stage) if param.name in params}

    return {
        "extract": extract(input_path, f, categorical=categorical, drop=drop, label_column=label_column,
                           anomaly_values=anomaly_values, scale=scale, missing=missing, id_columns=id_columns,
                           skip_current=True, progress=progress),
        "cluster": cluster(f, c, skip_current=True, progress=progress, **of("cluster")),
        "train": train(f, c, m, resume="if-possible", device=device, threads=threads, skip_current=True, progress=progress,
                       **of("train")),
        "score": score(m, f, s, contamination=contamination, device=device, threads=threads, skip_current=True,
                       progress=progress),
    }
