"""The fitted score of ``DeepUAD``: the parts of its ``score`` (parts.py), fitted on the reference
rows, each one's centre and spread over them, and their weights; ``state()`` / ``restore`` turn
it into the arrays a model file holds (``scorer/*``) and back, checked, since a model file may
come from someone else."""

from __future__ import annotations

import numpy as np

from deepuad.estimators import scoring
from deepuad.estimators.cleaning import tails_trim
from deepuad.estimators.parts import PAPER, WEIGHTS, combine, make, needs_network, parts_of, resolved_score, scores as score_names
from deepuad.estimators.rows import take_rows


class Scorer:
    """A fitted score: the parts of ``score`` (``parts_``, by name ``score_parts_``) fitted on the
    reference rows (``reference_``; ``reference_kept_``: which of them the model kept, where explain
    takes a column's expected value from), the centre and scale of each part over the reference
    (``score_center_``, ``score_scale_``) and the parts' weights (``score_weights_``). The paper's
    score fits nothing: it has its part only.

    The parts that need the network are given the reconstruction errors of ``model`` (DeepUAD's
    autoencoder); a scorer whose parts need none scores with NumPy alone, so that answering which
    rows and why (``explain``) never imports torch for such a model. ``score_parts`` and
    ``decision_function`` give the surface ``explain`` reads, as DeepUAD's do."""

    def __init__(self, score: str, parts: tuple[str, ...], n_features: int, n_neighbors: int):
        self.score, self.score_parts_, self.n_features_in_ = score, tuple(parts), n_features
        self.parts_ = [make(name, n_neighbors=n_neighbors) for name in self.score_parts_]

    @classmethod
    def fit(cls, score: str, X, rows: np.ndarray, seed: int, n_neighbors: int, model=None, device="cpu",
            kept: np.ndarray | None = None, kept_rows: np.ndarray | None = None,
            reference_trim: float | None = None) -> "Scorer":
        """The score's parts fitted on the reference ``X[rows]`` (sorted indices), each one's centre and
        scale its median and spread over the rows it was fitted on. ``kept``: which reference rows
        the model kept. ``reference_trim``: the parts are fitted on the reference rows within the
        fence of its tails at this cutoff (cleaning.tails_trim), every one where None. A part
        ``fitted_on`` "kept" (the forest, the range) is fitted on ``X[kept_rows]``, a sample of the
        rows the model kept (the reference where none is given); a score that chooses its parts by the
        data (``"auto"``, parts.resolve) chooses them from that sample.

        DeepUAD draws the reference from *all* rows, not the kept ones: the network learnt the kept
        rows, but measured against them only, every normal row the cleaning left out looks far from
        the data. It trims the reference by its tails: a group of anomalies many and alike, left in
        it, is its own neighbours and widens each column's distribution over itself."""
        if parts_of(score) == PAPER:
            return cls(score, PAPER, X.shape[1], n_neighbors)
        reference = take_rows(X, rows)
        kept_sample = reference if kept_rows is None else take_rows(X, kept_rows)
        resolved = resolved_score(score, kept_sample, seed)
        scorer = cls(score, parts_of(resolved), X.shape[1], n_neighbors)
        typical = reference
        if reference_trim is not None and any(part.fitted_on == "reference" for part in scorer.parts_):
            typical = reference[tails_trim(reference, reference_trim)]  # no part fitted on it: nothing to trim
        fitted_on = {"reference": typical, "kept": kept_sample}
        scorer.reference_ = reference
        scorer.reference_kept_ = np.ones(len(rows), dtype=bool) if kept is None else kept
        scorer.parts_ = [part.fit(fitted_on[part.fitted_on], seed) for part in scorer.parts_]
        values: list = [None] * len(scorer.parts_)  # each part's values on the rows it was fitted on
        for on, rows in fitted_on.items():
            mine = [i for i, part in enumerate(scorer.parts_) if part.fitted_on == on]
            for i, v in zip(mine, scorer.values(rows, model, device, parts=mine)[0]):
                values[i] = v
        centers, scales = zip(*(scoring.robust_scale(v) for v in values))
        scorer.score_center_, scorer.score_scale_ = np.array(centers), np.array(scales)
        scorer.score_weights_ = np.array([WEIGHTS.get(resolved, {}).get(part, 1.0) for part in scorer.score_parts_],
                                         dtype=np.float64)
        return scorer

    def values(self, X: np.ndarray, model=None, device="cpu", batch_size: int = 65536, with_codes: bool = False,
               parts: list[int] | None = None):
        """(each part's values, the bottleneck codes, the cosine errors) of the rows of X; the network
        ``model`` runs only where a part or ``with_codes`` needs it (codes and errors None otherwise).
        ``parts``: the indices of the parts to compute (all of them by default)."""
        parts = range(len(self.parts_)) if parts is None else parts
        codes = cosines = None
        errors = {}
        if with_codes or needs_network(tuple(self.score_parts_[i] for i in parts)):
            from deepuad.estimators.autoencoder import reconstruction_errors  # torch, for the network's parts only

            codes, cosines, squares = reconstruction_errors(model, X, batch_size=batch_size, device=device)
            errors = {"cosine": cosines, "l2": squares}
        return [np.asarray(self.parts_[i].values(X, errors), dtype=np.float64) for i in parts], codes, cosines

    def combined(self, values: list[np.ndarray], weighted: bool = True) -> np.ndarray:
        """The score (float64) from the parts' values (``combine``); ``weighted=False``: their plain mean."""
        if len(values) == 1:
            return np.asarray(values[0], dtype=np.float64)
        weights = self.score_weights_ if weighted else np.ones(len(values))
        return combine(values, self.score_parts_, self.score_center_, self.score_scale_, weights)

    def scores(self, values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(score, counting score) from the parts' values, float32. ``DeepUAD.fit`` estimates the
        anomaly share from the counting score: the plain mean of the parts wherever they are weighted
        (``combined``, and ``knn2+l2+range`` on dense data), else the score itself. Weights say how to
        rank rows, not how far out a row is: with ``combined`` the forest's bounded score, counted
        twice, compresses the weighted score's upper tail, where the 3-robust-sigma count then finds
        almost nothing."""
        score = self.combined(values).astype(np.float32)
        if len(values) == 1 or (self.score_weights_ == 1).all():
            return score, score
        return score, self.combined(values, weighted=False).astype(np.float32)

    def score_parts(self, X, batch_size: int = 65536) -> dict[str, np.ndarray]:
        """Each part's values for the rows of X, by name: a scorer whose parts need no network."""
        values, _, _ = self.values(self._checked(X), batch_size=batch_size)
        return dict(zip(self.score_parts_, values))

    def decision_function(self, X, batch_size: int = 65536) -> np.ndarray:
        return self.scores(list(self.score_parts(X, batch_size).values()))[0]

    def _checked(self, X) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[-1]} features, but the model expects {self.n_features_in_}")
        return X

    def state(self) -> dict[str, np.ndarray]:
        """The fitted scorer as NumPy arrays (``scorer/*`` in a model file); none for the paper's score."""
        if not hasattr(self, "reference_"):
            return {}
        arrays = {"scorer/reference": self.reference_, "scorer/score_center": self.score_center_,
                  "scorer/score_scale": self.score_scale_, "scorer/score_weights": self.score_weights_,
                  "scorer/reference_kept": self.reference_kept_.astype(np.uint8)}
        for part in self.parts_:
            arrays.update({f"scorer/{name}": values for name, values in part.state().items()})
        return arrays

    @classmethod
    def restore(cls, score: str, names: tuple[str, ...], arrays: dict[str, np.ndarray], n_features: int,
                n_neighbors: int) -> "Scorer":
        """A finished model's scorer from its ``state()`` arrays and the names of its parts, checked so
        that a corrupt or crafted file fails here (ValueError) instead of indexing out of range while
        scoring."""
        names = tuple(names)
        if names not in {parts_of(name) for name in score_names()}:
            raise ValueError(f"unknown score parts {list(names)}")
        scorer = cls(score, names, n_features, n_neighbors)
        if names == PAPER:
            return scorer
        reference = np.asarray(arrays["scorer/reference"], dtype=np.float32)
        if reference.ndim != 2 or reference.shape[1] != n_features or len(reference) < 2:
            raise ValueError(f"scorer reference has shape {reference.shape}, expected (>= 2, {n_features})")
        center = np.asarray(arrays["scorer/score_center"], dtype=np.float64)
        scale = np.asarray(arrays["scorer/score_scale"], dtype=np.float64)
        weights = np.asarray(arrays["scorer/score_weights"], dtype=np.float64)
        if (center.shape != (len(names),) or scale.shape != (len(names),) or weights.shape != (len(names),)
                or not (weights > 0).all() or not np.isfinite(weights).all() or not np.isfinite(center).all()
                or not (scale > 0).all() or not np.isfinite(scale).all() or not np.isfinite(reference).all()):
            raise ValueError("scorer calibration is not finite or does not match its parts")
        kept = np.asarray(arrays["scorer/reference_kept"])  # which reference rows the model kept
        if kept.shape != (len(reference),) or not np.isin(kept, (0, 1)).all():
            raise ValueError(f"scorer reference_kept is not one 0 or 1 per reference row ({len(reference)})")
        stored = {name[len("scorer/"):]: values for name, values in arrays.items() if name.startswith("scorer/")}
        for part in scorer.parts_:
            try:
                part.restore(stored, n_features)
            except KeyError:
                raise ValueError(f"scorer lacks the arrays of its part {part.name}") from None
        scorer.reference_, scorer.reference_kept_ = reference, kept.astype(bool)
        scorer.score_center_, scorer.score_scale_, scorer.score_weights_ = center, scale, weights
        return scorer
