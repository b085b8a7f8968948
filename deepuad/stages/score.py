"""``score``: h(x) for every row of a features artifact, streamed in batches -> a scores
artifact, or with ``--shard I/N`` one shard's rows -> a scores_shard artifact. For the features
file the model was trained on, the scores ``train`` computed in the same batches are taken from
the model (the same numbers, to the bit) and the network is not loaded."""

from __future__ import annotations

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import model as model_artifact
from deepuad.artifacts.features import as_finite_float32, Features, open_features
from deepuad.artifacts.scores import drift_fields, write_scores
from deepuad.artifacts.shard import write_shard
from deepuad.errors import DataError, InputError, ParamError, StaleError
from deepuad.estimators.params import SCORE_BATCH_ROWS
from deepuad.stages._common import (
    check_threads, check_threshold_options, default_output, existing_artifact_matches, load_model, no_progress, Progress,
    resolve_device, set_threads, skipped,
)
from deepuad.stages.defaults import DEVICE


def score(
    model_path,
    features_path,
    output=None,
    contamination=None,
    threshold=None,
    force=False,
    device=DEVICE,
    threads=None,
    batch_rows=SCORE_BATCH_ROWS,
    shard=None,
    skip_current=False,
    need_drift=False,
    progress: Progress = no_progress,
) -> dict:
    """h(x) for every row of a features artifact, streamed in chunks -> scores artifact. With
    ``shard=(i, n)`` only shard i's rows (``art.shard_rows``) -> scores_shard artifact, which
    merge_scores joins with the other n - 1 into the scores artifact this would have written.
    The scores artifact also holds the drift of these rows from the model's training data
    (``DriftMeasure``); ``need_drift`` (score's ``fail_on_drift`` option): InputError before anything is
    scored when the model holds no drift reference."""
    check_threshold_options(contamination, threshold)
    if batch_rows < 1:
        raise ParamError("batch_rows", f"must be >= 1, got {batch_rows}")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise ParamError("shard", f"must be I/N with 0 <= I < N, got {shard[0]}/{shard[1]}")
    suffix = "scores" if shard is None else f"scores.shard-{shard[0]}-of-{shard[1]}"
    output = art.check_output_path(output or default_output(features_path, suffix), [model_path, features_path])
    with open_features(features_path, X="disk") as features:
        features_fp = features.fingerprint
        # the rows the model was trained on: train scored them already, in these very batches
        stored = model_artifact.stored_scores(model_path, features_fp, batch_rows, device) if shard is None else None
        if stored is not None:
            check_threads(threads)  # nothing to compute: neither torch nor the network is loaded
            stored_scores, model_meta = stored
            scored_on = model_meta["params"]["device"]
        else:
            set_threads(threads)
            detector, model_meta = load_model(model_path, resolve_device(device))
            if not model_meta["complete"] and not hasattr(detector, "score_parts_") and detector.score != "cosine":
                raise InputError("is a checkpoint of an unfinished training run (no scorer yet): finish it with "
                                 "'deepuad train `resume`'", model_path)
            if features.encoding_fingerprint != model_meta["encoding_fingerprint"] and not force:
                raise StaleError(
                    f"is encoded differently from the data {model_path} was trained on; re-extract it with "
                    "'deepuad extract NEW `like` TRAINING.features.h5' or pass `force`", features_path)
            scored_on = detector.device
        if contamination is None and threshold is None:
            # recorded in a shard too, so merge-scores needs no model: the share a finished model
            # estimated from its training scores; a checkpoint (cosine alone) has none yet, and
            # takes the share p/100 that its training leaves out
            contamination = model_meta["contamination_estimate"] if model_meta["complete"] else detector.p / 100
        X = features.X
        n_rows, width = X.shape
        if stored is not None and len(stored_scores) != n_rows:  # the same fingerprint: only a crafted model
            raise InputError(f"holds {len(stored_scores)} training scores for the {n_rows} rows of {features_path} (corrupt?)",
                             model_path)
        if stored is None and width != model_meta["architecture"]["n_features"]:
            raise DataError(f"has {width} features but the model expects {model_meta['architecture']['n_features']}", features_path)
        if n_rows == 0:
            raise DataError("has no rows", features_path)
        params = {"contamination": contamination, "threshold": threshold, "device": scored_on, "batch_rows": batch_rows}
        inputs = {"model": {"path": str(model_path), "fingerprint": model_meta["fingerprint"]},
                  "features": {"path": str(features_path), "fingerprint": features_fp}}
        start, stop = (0, n_rows) if shard is None else art.shard_rows(n_rows, batch_rows, *shard)
        if shard is not None:
            params["shard"] = list(shard)
        if skip_current and existing_artifact_matches(output, "scores" if shard is None else "scores_shard", params, inputs):
            return skipped(output)
        y = features.labels(slice(start, stop))
        drift = None if shard is not None else DriftMeasure(model_path, features, model_meta)
        if need_drift and drift is not None and drift.reference is None and not drift.training_rows:
            raise InputError(f"holds no drift reference ({NO_REFERENCE}); retrain it with 'deepuad train' to use "
                             "`fail_on_drift`", model_path)

        def chunks():
            # batch by batch from ``start``, which is a multiple of batch_rows: a shard's rows are
            # scored in exactly the batches of an unsharded run (see art.shard_rows)
            for begin in range(start, stop, batch_rows):
                end = min(begin + batch_rows, stop)
                if stored is not None:
                    yield begin - start, stored_scores[begin:end]
                    continue
                try:
                    chunk = X[begin:end]
                except (OSError, ValueError) as error:
                    raise InputError(f"X unreadable at rows {begin}+ (corrupt?): {error}", features_path) from None
                chunk = as_finite_float32(chunk, features_path, begin)
                values = detector.decision_function(chunk, batch_size=batch_rows)
                if not np.isfinite(values).all():  # finite weights and inputs can still overflow together
                    raise DataError(f"scoring rows {begin}..{end - 1} with {model_path} gave NaN or infinite scores "
                                    f"(largest |x| in them: {float(np.abs(chunk).max()):.3g}; values too large for this model?)",
                                    features_path)
                if drift is not None and drift.counter is not None:
                    drift.counter.add(chunk, values, begin)
                yield begin - start, values

        if shard is None:
            summary = write_scores(output, params, inputs, n_rows, chunks(), y, contamination, threshold, progress,
                                   identity=features.identity_to_carry(), drift=drift)
            # drift when measured (inspect says why not): else the summary is merge-scores' own
            return {**summary, **(drift_fields(drift.stored) if drift.stored["measured"] else {})}
        return write_shard(output, params, inputs, chunks(), y, shard, (start, stop), n_rows, batch_rows, progress)


# why a model may hold no drift reference
NO_REFERENCE = "made before deepuad stored one, or by DeepUAD.save"


class DriftMeasure:
    """The drift of the rows being scored from the model's training data: ``counter`` counts
    them chunk by chunk as they are scored (None when there is nothing to measure: the model's
    own training features, or a model without a drift reference, ``reason``); called by
    ``write_scores`` with every score, it gives the stored summary and the PSI per column."""

    def __init__(self, model_path, features: Features, model_meta: dict):
        from deepuad.estimators.drift import DriftCounter
        from deepuad.inputs.decoding import Decoder

        self.counter, self.stored = None, None
        self.training_rows = model_meta["inputs"].get("features", {}).get("fingerprint") == features.fingerprint
        self.reference = None if self.training_rows else model_artifact.read_drift_reference(model_path)
        self.reason = ("these are the rows the model was trained on" if self.training_rows
                       else f"the model holds no drift reference ({NO_REFERENCE})" if self.reference is None else "")
        if self.reference is None:
            return
        width = features.width
        if self.reference["edges"].shape[0] != width:
            return  # a width the model does not take: score refuses it next
        self.names = [str(name) for name in features.feature_names()]
        try:
            self.groups = Decoder(features.encoding(), width).groups
        except ValueError:  # an encoding explain and top would refuse: drift is per column of X then
            self.groups = [(name, column, column + 1) for column, name in enumerate(self.names)]
        self.counter = DriftCounter(self.reference, features.n_rows)

    def __call__(self, scores: np.ndarray) -> tuple[dict, np.ndarray | None]:
        from deepuad.estimators import drift

        if self.counter is None:
            self.stored = {"measured": False, "reason": self.reason}
            return self.stored, None
        self.stored, column_psi = drift.summary(self.counter, scores, self.groups, self.names, self.reference["rows"])
        return self.stored, column_psi
