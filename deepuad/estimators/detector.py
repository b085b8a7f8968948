"""DeepUAD: the paper's Algorithm 1 as a scikit-learn/PyOD-style estimator.

    S_train = C(X, p0)                        # initial clustering, low-variance clusters
    repeat:
        train the autoencoder r epochs on S_train
        z = [encoder(x) ; 1 - cos(x, decoder(encoder(x)))] for ALL x
        S_train = C(z, p)                     # reselect_by="variance" (default): GMM on z, low-variance clusters
                                              # reselect_by="error": the (100 - p)% lowest errors
    until S_train no longer changes (or the epoch budget is spent)
    score(x) = the error of the network trained on S_train, with distances to the data   # parts.py

The score (``score``, parts.SCORES): ``"cosine"`` is the paper's h(x) = 1 - cos(x, decoder(encoder(x)));
the others combine the log squared error of the network trained on the kept rows with parts fitted
on a sample of all rows (parts.py: ``"distance+forest"`` the k-NN distance to distinct rows, an
isolation forest and the distance beyond a column's fenced range).
``contamination_`` is the share of training rows the flag rule flags (more than 3 robust sigmas
above the median score; for ``score="combined"`` of the plain mean of its parts: ``_scores`` says
why); it sets ``threshold_`` unless ``contamination`` is given.

The cleaning: ``reselect_by="variance"`` (the paper's, the default) or ``"trim"`` (cleaning.py: the
rows within a fence of the kept rows' own scores, so the kept share follows the data); the first
training set likewise (``init_by``).

Readings of the paper settled here (docs/fidelity.md gives the reasons and measurements):
* Algorithm 1 spends every r-th epoch on re-selection instead of training; here a
  re-selection follows every r *training* epochs, so ``epochs`` counts training epochs.
* "No change" is relaxed to "at most ``tol`` x N indices changed"; ``tol=0`` is the paper's
  literal rule (on KDDCUP the selections otherwise oscillate for the whole budget).
* Re-selection: the paper's, a GMM on z keeping the low-variance clusters (``reselect_by=
  "variance"``), with the GMM fitted on ``reselect_fit_sample`` random rows and every row
  assigned. It grows the training set back over normal modes the initial clustering left out:
  a left-out mode is a tight cluster in z even though its error is high. Keeping the rows whose
  error is below the (100 - p)th percentile (``reselect_by="error"``) cannot do that: a left-out
  normal mode may reconstruct worse than the anomalies, and the rule then keeps anomalies first.
* The training loss is MSE between x and its reconstruction (the paper does not name it);
  ``loss="cosine"`` trains on the score itself.

No file or terminal I/O happens here. A ``callback(event, detector, info)`` is called after
every epoch (event "epoch") and every re-selection (event "reselect", with the scores of all
rows at that moment in ``info["scores"]``, and ``info["last"]`` true when training ends there)
so that callers can show progress, compute diagnostics from labels the algorithm never sees, and
save ``get_state()`` as a checkpoint that ``fit(..., resume_state=...)`` continues from exactly.

Longer than 400 lines on purpose: it is one estimator, Algorithm 1 with its state (the
parameter table, fit and its one training loop, re-selection, the scorer, get_state/set_state);
splitting it would scatter one object's methods over several files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from deepuad.estimators import cleaning, parts as score_parts, scoring
from deepuad.estimators.autoencoder import Autoencoder, EagerAdam, cosine_error, encode_and_score, reconstruction_errors
from deepuad.estimators.distributed import World
from deepuad.estimators.base import BaseDetector, _check_width, check_array, not_fitted
from deepuad.estimators.rows import take_rows  # noqa: F401 (re-exported: tests and callers import it from here)
from deepuad.estimators.params import CONSTRAINTS, DEFAULTS, PAPER_READING, SCORE_BATCH_ROWS, check_contamination  # noqa: F401 (PAPER_READING: re-exported beside DeepUAD)
from deepuad.estimators.selection import Selection, initial_selection, n_changed, select


_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


@dataclass
class Iteration:
    """One training-set selection: iteration 0 is the initial clustering."""

    iteration: int
    epoch: int  # training epochs completed when the selection was made
    selected: np.ndarray  # sorted row indices of the training set chosen
    n_changed: int  # indices that entered or left, vs the previous selection
    loss: float  # mean training loss over the epochs since the previous selection (nan for 0)
    threshold: float  # cluster-variance cut-off applied
    fallback: bool  # the tiny-set guard had to add clusters

    @property
    def n_selected(self) -> int:
        return len(self.selected)


class DeepUAD(BaseDetector):
    """Deep end-to-end unsupervised anomaly detection (the paper's Algorithm 1).

    Parameters mirror the paper's Table 8 (KDDCUP defaults); each is declared, with its default
    and constraints, in ``params.PARAMS``. ``__init__`` only stores them; ``fit`` checks them.
    ``contamination`` only sets ``threshold_``/``labels_``; ``None`` means ``contamination_``, the
    share estimated from the training scores (the paper used p/100, its guess of the anomaly share).

    Learned attributes: ``model_`` (the autoencoder), ``iterations_`` (list of
    ``Iteration``, one per selection, 0 = initial), ``selected_`` (current training set),
    ``epoch_`` (training epochs done), ``epoch_losses_``, ``converged_``, ``stop_reason_``
    ("converged" or "epoch budget"), and after ``fit`` ``decision_scores_``, ``threshold_``,
    ``labels_``.
    """

    # every parameter's constraints (params.PARAMS), checked by ``fit`` in this order
    _parameter_checks = CONSTRAINTS

    def __init__(
        self,
        p0: float = DEFAULTS["p0"],
        p: float = DEFAULTS["p"],
        r: int = DEFAULTS["r"],
        epochs: int = DEFAULTS["epochs"],
        batch_size: int | str = DEFAULTS["batch_size"],
        lr: float = DEFAULTS["lr"],
        layers: tuple[int, ...] | str = DEFAULTS["layers"],
        activation: str = DEFAULTS["activation"],
        loss: str = DEFAULTS["loss"],
        init_method: str = DEFAULTS["init_method"],
        init_clusters: int = DEFAULTS["init_clusters"],
        reselect_clusters: int = DEFAULTS["reselect_clusters"],
        reselect_fit_sample: int | None = DEFAULTS["reselect_fit_sample"],
        percentile_over: str = DEFAULTS["percentile_over"],
        reselect_by: str = DEFAULTS["reselect_by"],
        tol: float = DEFAULTS["tol"],
        min_fraction: float = DEFAULTS["min_fraction"],
        device: str = DEFAULTS["device"],
        precision: str = DEFAULTS["precision"],
        compile: bool = DEFAULTS["compile"],
        seed: int = DEFAULTS["seed"],
        contamination: float | None = DEFAULTS["contamination"],
        score: str = DEFAULTS["score"],
        n_neighbors: int = DEFAULTS["n_neighbors"],
        reference_size: int = DEFAULTS["reference_size"],
        init_by: str = DEFAULTS["init_by"],
        trim_cutoff: float = DEFAULTS["trim_cutoff"],
        cluster_cutoff: float | None = DEFAULTS["cluster_cutoff"],
    ):
        self._store_params(locals())

    # ----------------------------------------------------------------- fitting
    def fit(self, X, y=None, *, initial=None, callback=None, resume_state=None, world=None) -> "DeepUAD":
        """Run Algorithm 1 on X (no labels: ``y`` is ignored, accepted for scikit-learn's Pipeline).

        ``initial``: indices of the first training set (e.g. from ``deepuad
        cluster``); when None it is computed with ``initial_selection(X, p0, ...)``.
        ``resume_state``: a ``get_state()`` dict saved by an earlier, interrupted fit.
        ``world``: a ``distributed.World`` of several processes (torchrun) to train
        data-parallel; then X may be any array-like with NumPy row slicing (an open HDF5
        dataset: each rank reads only its rows) and must already be validated.
        """
        self.check_params()
        world = world if world is not None else World(device=self.device)  # one process: a world of size one
        if not world.distributed:
            X = check_array(X, min_samples=2)  # one row has nothing to be anomalous against
        if resume_state is not None:
            self.set_state(resume_state, X.shape[1], len(X))
        else:
            if initial is None:
                initial = initial_selection(
                    X, self.p0, self.init_method, self.init_clusters, self.percentile_over, self.min_fraction, self.seed,
                    self.init_by, self.trim_cutoff, self.cluster_cutoff,
                )
                initial = initial.selected
            self._start(X.shape[1], np.asarray(initial, dtype=np.int64), len(X))
        self._train(X, callback, world)
        self._fit_scorer(X)  # every rank draws the same rows and grows the same forest
        scores, counting = self._all_scores(X, world)
        self.decision_scores_ = scores.astype(np.float64)
        self.contamination_ = scoring.estimate_contamination(counting)
        self._process_decision_scores()
        return self

    def _contamination_used(self) -> float:
        return self.contamination if self.contamination is not None else self.contamination_

    def _start(self, n_features: int, selected: np.ndarray, n_rows: int, with_optimizer: bool = True) -> None:
        if len(selected) == 0:
            raise ValueError("the initial training set is empty")
        if selected.min() < 0 or selected.max() >= n_rows:
            raise ValueError(f"initial selection has indices outside [0, {n_rows})")
        self.n_features_in_ = n_features
        self.layers_ = auto_layers(n_features) if self.layers == "auto" else tuple(self.layers)
        self.batch_size_ = auto_batch_size(n_rows) if self.batch_size == "auto" else int(self.batch_size)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching global RNG
            torch.manual_seed(self.seed)
            self.model_ = Autoencoder(n_features, self.layers_, self.activation)
        self.model_.to(self.device)
        if with_optimizer:  # scoring needs none
            # foreach: one op per update over all tensors; the same numbers on CPU as one op per tensor,
            # in less time per step (tests/test_cli_imports.py checks the numbers)
            self.optimizer_ = EagerAdam(self.model_.parameters(), lr=self.lr, foreach=True)
        self._shuffle_rng = torch.Generator().manual_seed(self.seed)
        self.selected_ = np.sort(selected)
        self.iterations_ = [Iteration(0, 0, self.selected_, len(self.selected_), float("nan"), float("nan"), False)]
        self.epoch_ = 0
        self.epoch_losses_: list[float] = []
        self.converged_ = False
        self.stop_reason_ = ""

    def _place(self, X: torch.Tensor) -> torch.Tensor:
        """The whole matrix on the device when it fits in half its free memory (no per-batch
        copies); otherwise pinned in host memory, each batch copied asynchronously."""
        if not str(self.device).startswith("cuda"):
            return X
        free, _ = torch.cuda.mem_get_info(torch.device(self.device))
        return X.to(self.device) if X.nbytes < free // 2 else X.pin_memory()

    def _prepare_steps(self, network: torch.nn.Module) -> None:
        device_type = torch.device(self.device).type
        self._autocast = lambda: torch.autocast(
            device_type, dtype=_AUTOCAST_DTYPES.get(self.precision, torch.float32), enabled=self.precision != "32"
        )
        # fp16 needs loss scaling against underflow; bf16 has float32's range and needs none
        self._scaler = torch.amp.GradScaler(device_type, enabled=self.precision == "16")
        self._forward = torch.compile(network) if self.compile else network

    def _train(self, X, callback, world) -> None:
        """Algorithm 1's loop: train r epochs on the selected rows, re-select from ALL rows, until
        the selection stops changing or the epoch budget is spent.

        One process is a world of size one: X (a NumPy array) stays whole on the device and each
        epoch shuffles the selected rows. Under torchrun (``world.distributed``) X may be an open
        HDF5 dataset: each rank trains on its block of the selected rows with 1/N of the batch,
        DistributedDataParallel averages the gradients (the global batch stays ``batch_size``),
        each rank encodes its 1/N of the rows for a re-selection, and rank 0 chooses."""
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            if len(self.selected_) < world.size:
                raise ValueError(f"the training set has {len(self.selected_)} rows, fewer than the {world.size} processes")
            device_ids = [torch.device(self.device).index] if str(self.device).startswith("cuda") else None
            self._prepare_steps(DistributedDataParallel(self.model_, device_ids=device_ids))
        else:
            X = self._place(torch.from_numpy(X))
            self._prepare_steps(self.model_)
        rows = None  # what an epoch trains on: all of X in one process, this rank's block of the selected rows in several
        while self._training_goes_on():
            if rows is None:
                rows = self._training_rows(X, world)
            self.epoch_losses_.append(self._train_one_epoch(rows, world))
            self.epoch_ += 1
            if callback:
                callback("epoch", self, {"epoch": self.epoch_, "loss": self.epoch_losses_[-1]})
            if self.epoch_ % self.r == 0:
                scores = self._reselect(X, world)
                rows = None if world.distributed else rows
                if callback:
                    callback("reselect", self, {"iteration": self.iterations_[-1], "scores": scores,
                                                "last": not self._training_goes_on()})
        self.stop_reason_ = "converged" if self.converged_ else "epoch budget"

    def _training_goes_on(self) -> bool:
        """More epochs to train: the budget is not spent and the selection has not settled."""
        return self.epoch_ < self.epochs and not self.converged_

    def _training_rows(self, X, world):
        """All of X (on the device) in one process; this rank's block of the current training set under torchrun."""
        if not world.distributed:
            return X
        start, stop = world.block(len(self.selected_))  # read once per selection
        return torch.from_numpy(take_rows(X, self.selected_[start:stop])).to(self.device)

    def _train_one_epoch(self, rows: torch.Tensor, world=None) -> float:
        """One pass over the training set; the mean loss per row (over all ranks)."""
        if world is None or not world.distributed:  # the selected rows of X, shuffled
            selected = torch.from_numpy(self.selected_)
            order = selected[torch.randperm(len(selected), generator=self._shuffle_rng)].to(rows.device)
            return float(self._train_steps(rows, order, self.batch_size_)) / len(order)  # one device sync per epoch
        # One seed per epoch from the generator every rank shares (and a checkpoint stores, so a run
        # may resume with another number of processes); each rank shuffles its own block with it.
        epoch_seed = int(torch.randint(2**62, (1,), generator=self._shuffle_rng))
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(epoch_seed + world.rank))
        # every rank must take the same number of steps (each step all-reduces gradients): blocks
        # differ in size by at most one row, so a shorter block repeats its first row
        largest = -(-len(self.selected_) // world.size)
        order = torch.cat([order, order[: largest - len(order)]]).to(rows.device)
        total = self._train_steps(rows, order, -(-self.batch_size_ // world.size))
        loss_sum, count = world.all_sum([float(total), float(len(order))])
        return loss_sum / count

    def _train_steps(self, X: torch.Tensor, order: torch.Tensor, batch_size: int) -> torch.Tensor:
        """One optimiser step per batch of rows ``X[order]``; returns the summed loss x batch size."""
        total = torch.zeros((), device=self.device)
        for start in range(0, len(order), batch_size):
            # index_select copies the same rows as X[...], several times faster on the CPU
            batch = X.index_select(0, order[start : start + batch_size])
            if batch.device != torch.device(self.device):  # data kept in (pinned) host memory
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            with self._autocast():
                reconstruction = self._forward(batch).float()
            if self.loss == "mse":
                loss = torch.nn.functional.mse_loss(reconstruction, batch)
            else:
                loss = cosine_error(batch, reconstruction).mean()
            self.optimizer_.zero_grad(set_to_none=True)
            self._scaler.scale(loss).backward()
            self._scaler.step(self.optimizer_)
            self._scaler.update()
            total += loss.detach() * len(batch)
        return total

    def _reselect(self, X, world=None) -> np.ndarray:
        """S_train = C(z, p) over ALL rows: each rank encodes its rows, rank 0 chooses and every
        rank takes its choice. Returns the errors of all rows (on rank 0; None on the others)."""
        world = world if world is not None else World(device=self.device)
        if self.reselect_by == "trim":  # rank 0 measures every row's outlyingness itself
            chosen, errors = self._trim(X) if world.is_root else (None, None)
        else:
            errors, codes = self._encode(X, world, with_codes=self.reselect_by == "variance")
            chosen = self._choose(codes, errors) if world.is_root else None
        if not world.distributed:
            self._record(chosen.selected, chosen.threshold, chosen.fallback, len(X))
            return errors
        selected = world.broadcast(chosen.selected if chosen else None, np.int64)
        threshold, fallback = world.broadcast(
            np.array([chosen.threshold, chosen.fallback], np.float64) if chosen else None, np.float64)
        self._record(selected, float(threshold), bool(fallback), len(X))
        return errors

    def _choose(self, codes: np.ndarray | None, errors: np.ndarray) -> Selection:
        """S_train = C(z, p) from the codes and errors of all rows (codes only needed for "variance")."""
        if self.reselect_by == "error":
            # rows whose reconstruction error is below the (100 - p)th percentile of all errors
            threshold = float(np.quantile(errors, 1 - self.p / 100))
            return Selection(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), threshold,
                             np.zeros(0, bool), np.flatnonzero(errors <= threshold).astype(np.int64), False)
        return self._variance_selection(codes, errors, self._gmm_seed())

    def _gmm_seed(self) -> int:
        """A different but reproducible GMM seed per re-selection."""
        return int(np.random.default_rng([self.seed, len(self.iterations_)]).integers(2**31 - 1))

    def _z_labels(self, codes: np.ndarray, errors: np.ndarray, gmm_seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(z = [code; error], the paper's GMM clusters of z) of all rows."""
        from deepuad.estimators.clustering import gmm_labels

        z = np.concatenate([codes, errors[:, None]], axis=1).astype(np.float64)
        return z, gmm_labels(z, self.reselect_clusters, gmm_seed, "full", 1e-6, fit_sample=self.reselect_fit_sample)

    def _trim(self, X) -> tuple[Selection, np.ndarray]:
        """The ``trim`` re-selection (cleaning.py): every row's outlyingness is its score under the
        current network, with the score's parts fitted on a seeded sample of the current training
        set; with ``cluster_cutoff``, the clusters are the paper's, a GMM on z = [code; error].
        Returns the selection and the outlyingness of every row."""
        rng = np.random.default_rng([self.seed, len(self.iterations_)])
        parts = score_parts.SCORES[self.score]
        fitted, center, scale = self._fit_parts(take_rows(X, self._reference_rows(rng)), parts)
        clustered = self.cluster_cutoff is not None  # the clusters need every row's code and error
        values, codes, cosines = [], [], []
        for start in range(0, len(X), SCORE_BATCH_ROWS):
            rows = np.ascontiguousarray(X[start : start + SCORE_BATCH_ROWS], dtype=np.float32)
            block, code, cosine = self._part_values(rows, fitted, with_codes=clustered)
            values.append(block)
            codes.append(code)
            cosines.append(cosine)
        values = [np.concatenate(column) for column in zip(*values)]
        outlyingness = score_parts.combine(values, parts, center, scale, np.ones(len(parts)))
        labels = None
        if clustered:
            _, labels = self._z_labels(np.concatenate(codes), np.concatenate(cosines), self._gmm_seed())
        selected, threshold = cleaning.trim(outlyingness, self.trim_cutoff, self.selected_, labels, self.cluster_cutoff)
        empty = np.zeros(0)
        return Selection(empty.astype(np.int64), empty.astype(np.int64), empty, threshold, empty.astype(bool), selected, False), outlyingness

    def _variance_selection(self, codes: np.ndarray, errors: np.ndarray, gmm_seed: int) -> Selection:
        """The paper's re-selection: a GMM (seeded ``gmm_seed``) on z = [code; error], keeping the
        low-variance clusters."""
        z, labels = self._z_labels(codes, errors, gmm_seed)
        return select(z, labels, self.p, over=self.percentile_over, min_fraction=self.min_fraction)

    def _record(self, selected: np.ndarray, threshold: float, fallback: bool, n_rows: int) -> None:
        """Make ``selected`` the training set; converged when at most tol x n_rows indices changed."""
        t = len(self.iterations_)
        changed = n_changed(self.selected_, selected)
        since_last = self.epoch_losses_[-self.r :]
        self.iterations_.append(Iteration(t, self.epoch_, selected, changed, float(np.mean(since_last)), threshold, fallback))
        self.selected_ = selected
        self.converged_ = changed <= self.tol * n_rows

    def _encode(self, X, world, with_codes: bool):
        """(errors, codes) of ALL rows on rank 0, each rank encoding its own row range; (None, None)
        on the other ranks. Codes only ``with_codes`` under torchrun (they cost 4 x bottleneck bytes a row)."""
        start, stop = world.block(len(X))
        codes, errors = encode_and_score(self.model_, X, device=self.device, start=start, stop=stop)
        if not world.distributed:
            return errors, codes
        errors = world.gather_rows(errors, len(X))
        codes = world.gather_rows(codes, len(X)) if with_codes else None
        return errors, codes

    def _all_scores(self, X, world) -> tuple[np.ndarray, np.ndarray]:
        """``_scores`` of ALL rows on every rank, each rank scoring its own row range."""
        if not world.distributed:
            # chunk by chunk exactly as ``score`` scores a features file, so that the scores it takes
            # from a model for the rows the model was trained on are what it would compute, to the bit
            blocks = [self._scores(X[start : start + SCORE_BATCH_ROWS], SCORE_BATCH_ROWS)
                      for start in range(0, len(X), SCORE_BATCH_ROWS)]
            return tuple(np.concatenate(values) for values in zip(*blocks))
        start, stop = world.block(len(X))
        block = self._scores(take_rows(X, np.arange(start, stop)))
        return tuple(world.broadcast(world.gather_rows(values, len(X)), np.float32) for values in block)

    # ----------------------------------------------------------------- scoring
    def _reference_rows(self, rng: np.random.Generator, rows: np.ndarray | None = None) -> np.ndarray:
        """A seeded sample of ``rows`` (default: the current training set), at most
        ``reference_size`` rows, sorted."""
        rows = self.selected_ if rows is None else rows
        if len(rows) > self.reference_size:
            rows = np.sort(rng.choice(rows, size=self.reference_size, replace=False))
        return rows

    def _fit_parts(self, reference: np.ndarray, names: tuple[str, ...]):
        """The parts ``names`` fitted on ``reference``, and the median and spread of each one's
        values over the reference rows (what its robust z-score is taken against)."""
        fitted = [score_parts.make(name, int(self.n_neighbors)).fit(reference, self.seed) for name in names]
        values, _, _ = self._part_values(reference, fitted)
        centers, scales = zip(*(scoring.robust_scale(v) for v in values))
        return fitted, np.array(centers), np.array(scales)

    def _part_values(self, X: np.ndarray, fitted: list, batch_size: int = 65536, with_codes: bool = False):
        """(each part's values, the bottleneck codes, the cosine errors) of the rows of X; the
        network runs only where a part or ``with_codes`` needs it (codes and errors None otherwise)."""
        codes = cosines = None
        errors = {}
        if with_codes or score_parts.needs_network(tuple(part.name for part in fitted)):
            codes, cosines, squares = reconstruction_errors(self.model_, X, batch_size=batch_size, device=self.device)
            errors = {"cosine": cosines, "l2": squares}
        return [np.asarray(part.values(X, errors), dtype=np.float64) for part in fitted], codes, cosines

    def _fit_scorer(self, X) -> None:
        """Fit what the score compares rows with. The network was trained on the kept rows; the
        other parts (parts.py) are fitted on and calibrated against the reference, a seeded
        sample of *all* rows (at most ``reference_size``): measured against the kept rows only,
        every normal row the cleaning left out looks far from the data."""
        self.score_parts_ = score_parts.SCORES[self.score]
        if self.score_parts_ == ("cosine",):  # the paper's score needs nothing beyond the network
            return
        rng = np.random.default_rng([self.seed, len(self.iterations_)])
        rows = self._reference_rows(rng, np.arange(len(X)))
        self.reference_ = take_rows(X, rows)
        self.reference_kept_ = np.isin(rows, self.selected_)  # explain draws a column's expected value from these
        self.parts_, self.score_center_, self.score_scale_ = self._fit_parts(self.reference_, self.score_parts_)
        self.score_weights_ = score_parts.weights_of(self.score, self.score_parts_)

    def score_parts(self, X, batch_size: int = 65536) -> dict[str, np.ndarray]:
        """Each part of the score (``score_parts_``: name -> values), as it enters the combination
        (parts.py: the log of an error or a distance), for every row of X."""
        X = self._checked(X)
        names = getattr(self, "score_parts_", ("cosine",))  # mid-fit the cosine score has no scorer yet
        values, _, _ = self._part_values(X, getattr(self, "parts_", None) or [score_parts.CosineError()], batch_size)
        return dict(zip(names, values))

    def reconstruct(self, X, batch_size: int = 65536) -> np.ndarray:
        """decoder(encoder(x)) of every row of X (float32): the row the network expected."""
        X = self._checked(X)
        parameter = next(self.model_.parameters())
        out = np.empty_like(X)
        was_training = self.model_.training
        self.model_.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(X), batch_size):
                    batch = torch.from_numpy(X[start : start + batch_size]).to(parameter.device, parameter.dtype)
                    out[start : start + len(batch)] = self.model_(batch).float().cpu().numpy()
        finally:
            self.model_.train(was_training)
        return out

    def decision_function(self, X, batch_size: int = 65536) -> np.ndarray:
        """The anomaly score of every row (float32), higher = more anomalous: the combination of the
        parts (parts.combine) for a score of several parts, the raw part otherwise."""
        return self._scores(self._checked(X), batch_size)[0]

    def _checked(self, X) -> np.ndarray:
        """X as float32 rows as wide as the training data, once there is something to score them
        with: NotFittedError before ``fit``, ValueError for another width, NaN or infinity."""
        if not hasattr(self, "model_"):
            raise not_fitted(self)
        if not hasattr(self, "score_parts_") and self.score != "cosine":  # the cosine error needs no fitted scorer
            raise RuntimeError("DeepUAD has no scorer yet: its training has not finished (score='cosine' scores mid-fit)")
        X = check_array(X.numpy() if isinstance(X, torch.Tensor) else X)
        _check_width(self, X)
        return X

    def _scores(self, X, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """(score, counting score) of every row, float32. ``fit`` estimates the anomaly share from
        the counting score: the score itself, but for ``score="combined"`` the plain mean of the
        parts' z-scores, not the weighted one (the forest's bounded score compresses the weighted
        score's upper tail, where the 3-robust-sigma count then finds almost nothing)."""
        fitted = getattr(self, "parts_", None) or [score_parts.CosineError()]
        values, _, _ = self._part_values(X, fitted, batch_size)
        parts = getattr(self, "score_parts_", ("cosine",))
        if len(parts) == 1:
            score = values[0].astype(np.float32)
            return score, score
        score = score_parts.combine(values, parts, self.score_center_, self.score_scale_, self.score_weights_)
        if parts != score_parts.SCORES["combined"]:
            score = score.astype(np.float32)
            return score, score
        counting = score_parts.combine(values, parts, self.score_center_, self.score_scale_, np.ones(len(parts)))
        return score.astype(np.float32), counting.astype(np.float32)

    # ----------------------------------------------------------------- pickling, files, checkpoint state
    # training's step machinery (autocast factory, gradient scaler, compiled network): rebuilt by
    # every fit, and not picklable
    _TRANSIENT = ("_autocast", "_scaler", "_forward")

    def __getstate__(self) -> dict:
        """What ``pickle`` and ``joblib`` store: everything but the training step machinery."""
        return {name: value for name, value in self.__dict__.items() if name not in self._TRANSIENT}

    def save(self, path) -> None:
        """Write the fitted model to ``path`` as a model artifact (HDF5 datasets, no pickle;
        written atomically: the file is whole or not there); ``DeepUAD.load(path)`` reads it."""
        from deepuad.stages._common import save_model

        self._require_fitted()
        save_model(self, path)

    @classmethod
    def load(cls, path, device: str = "cpu") -> "DeepUAD":
        """A fitted DeepUAD from a model artifact (``save``'s, or ``deepuad train``'s), scoring
        as the saved one did; never unpickles."""
        from deepuad.stages._common import load_fitted

        return load_fitted(path, device)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """Everything needed to continue training exactly: (arrays, JSON-able metadata).

        Arrays are plain NumPy (weights, Adam moments, RNG state, selections), so a
        checkpoint can be stored as HDF5 datasets and loaded without unpickling anything.
        """
        arrays = {f"weights/{k}": v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}
        # a model loaded to score has no optimiser: its state is then the network and scorer only
        optimizer = self.optimizer_.state_dict() if hasattr(self, "optimizer_") else {"state": {}, "param_groups": []}
        for param_id, param_state in optimizer["state"].items():
            for key, value in param_state.items():
                arrays[f"optimizer/{param_id}/{key}"] = torch.as_tensor(value).detach().cpu().numpy()
        arrays["rng_state"] = self._shuffle_rng.get_state().numpy()
        arrays["epoch_losses"] = np.asarray(self.epoch_losses_, dtype=np.float64)
        for it in self.iterations_:
            arrays[f"iterations/{it.iteration}/selected"] = it.selected
        for name in ("reference_", "score_center_", "score_scale_", "score_weights_"):  # the fitted scorer (absent in a checkpoint)
            if hasattr(self, name):
                arrays[f"scorer/{name.rstrip('_')}"] = getattr(self, name)
        if hasattr(self, "reference_kept_"):
            arrays["scorer/reference_kept"] = self.reference_kept_.astype(np.uint8)
        for part in getattr(self, "parts_", []):
            for name, values in part.state().items():
                arrays[f"scorer/{name}"] = values
        meta = {
            "epoch": self.epoch_,
            "converged": self.converged_,
            "optimizer_param_groups": json.dumps(optimizer["param_groups"]),
            "iterations": [
                {k: getattr(it, k) for k in ("iteration", "epoch", "n_changed", "loss", "threshold", "fallback")}
                for it in self.iterations_
            ],
        }
        if hasattr(self, "score_parts_"):
            meta["score_parts"] = list(self.score_parts_)
            meta["contamination_estimate"] = getattr(self, "contamination_", None)
        return arrays, meta

    def set_state(self, state: tuple[dict[str, np.ndarray], dict], n_features: int, n_rows: int,
                 with_optimizer: bool = True) -> None:
        """Continue from ``get_state()``'s (arrays, metadata): network, optimiser (unless
        ``with_optimizer`` is False: scoring needs none), shuffling RNG, selections, scorer."""
        arrays, meta = state
        iterations = meta["iterations"]
        self._start(n_features, arrays["iterations/0/selected"], n_rows, with_optimizer)
        weights = {k[len("weights/") :]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("weights/")}
        self.model_.load_state_dict(weights)
        if with_optimizer:
            optimizer_state: dict = {}
            for key, value in arrays.items():
                if key.startswith("optimizer/"):
                    _, param_id, name = key.split("/")
                    optimizer_state.setdefault(int(param_id), {})[name] = torch.from_numpy(np.array(value))
            self.optimizer_.load_state_dict({"state": optimizer_state, "param_groups": json.loads(meta["optimizer_param_groups"])})
        self._shuffle_rng.set_state(torch.from_numpy(np.array(arrays["rng_state"], dtype=np.uint8)))
        self.epoch_losses_ = [float(v) for v in arrays["epoch_losses"]]
        self.iterations_ = [
            Iteration(
                int(it["iteration"]), int(it["epoch"]), np.asarray(arrays[f"iterations/{it['iteration']}/selected"], dtype=np.int64),
                int(it["n_changed"]), float(it["loss"]), float(it["threshold"]), bool(it["fallback"]),
            )
            for it in iterations
        ]
        self.selected_ = self.iterations_[-1].selected
        self.epoch_ = int(meta["epoch"])
        self.converged_ = bool(meta["converged"])
        if "score_parts" in meta:  # a finished model: its scorer too
            self._restore_scorer(arrays, meta, n_features)

    def _restore_scorer(self, arrays: dict[str, np.ndarray], meta: dict, n_features: int) -> None:
        """The fitted scorer from a state, checked so that a corrupt or crafted file fails here
        (ValueError) instead of indexing out of range while scoring."""
        parts = tuple(meta["score_parts"])
        if parts not in score_parts.SCORES.values():
            raise ValueError(f"unknown score parts {list(parts)}")
        self.score_parts_ = parts
        if meta.get("contamination_estimate") is not None:
            self.contamination_ = float(meta["contamination_estimate"])
            check_contamination(self.contamination_, "the contamination estimate")
        if parts == ("cosine",):
            return
        fitted = score_parts.restore_scorer(arrays, parts, n_features, int(self.n_neighbors))
        for name, value in fitted.items():
            setattr(self, name, value)


def auto_layers(n_features: int) -> tuple[int, ...]:
    """Encoder widths sized to the data: d/2 then d/4, at most 64 and 32. The paper's 60-30-10 is
    KDDCUP's (118 columns); on 3 columns it would be over-complete and learn the identity, on
    1,500 it would be slow for nothing."""
    return (min(64, math.ceil(n_features / 2)), max(1, min(32, math.ceil(n_features / 4))))


def auto_batch_size(n_rows: int) -> int:
    """About 16 steps per epoch on small data (a 1024-row batch would give 1 or 2), 1024 from 16k rows on."""
    return int(min(1024, max(32, n_rows // 16)))
