"""DeepUAD: the paper's Algorithm 1 as a scikit-learn/PyOD-style estimator.

    S_train = C(X, p0)                        # initial clustering, low-variance clusters (init_by)
    repeat:
        train the autoencoder r epochs on S_train
        S_train = C(z, p) over ALL rows       # the re-selection rule reselect_by, on
                                              # z = [encoder(x) ; 1 - cos(x, decoder(encoder(x)))]
    until S_train no longer changes (or the epoch budget is spent)
    score(x) = the error of the network trained on S_train, with distances to the data

The rules that choose S_train are registered by name (rules.py): the paper's, a GMM on z keeping
the low-variance clusters (``reselect_by="variance"``, the default), the (100 - p) % lowest errors
(``"error"``), or the rows within a fence of the kept rows' own scores (``"trim"``, cleaning.py);
the first training set likewise (``init_by``). The score is a ``scorer.Scorer``: ``"cosine"`` is
the paper's h(x) = 1 - cos(x, decoder(encoder(x))); the others combine the log squared error of
the network trained on the kept rows with parts fitted on a sample of all rows, less its rows far in
its tails (``reference_trim``, cleaning.tails_trim; parts.py).
``contamination_`` is the share of training rows the flag rule flags (more than 3 robust sigmas
above the median of the counting score, ``Scorer.scores``); it sets ``threshold_`` unless
``contamination`` is given.

Readings of the paper settled here (docs/fidelity.md gives the reasons and measurements):
* Algorithm 1 spends every r-th epoch on re-selection instead of training; here a
  re-selection follows every r *training* epochs, so ``epochs`` counts training epochs.
* "No change" is relaxed to "at most ``tol`` x N indices changed"; ``tol=0`` is the paper's
  literal rule (on KDDCUP the selections otherwise oscillate for the whole budget).
* The training loss is MSE between x and its reconstruction (the paper does not name it);
  ``loss="cosine"`` trains on the score itself.

No file or terminal I/O happens here. A ``callback(event, detector, info)`` is called after
every epoch (event "epoch") and every re-selection (event "reselect", with each row's value
under the rule at that moment in ``info["scores"]``, and ``info["last"]`` true when training
ends there) so that callers can show progress, compute diagnostics from labels the algorithm
never sees, and save ``get_state()`` as a checkpoint that ``fit(..., resume_state=...)``
continues from exactly.

Longer than 400 lines: one estimator, whose training, scoring and checkpoint state share its
learned attributes, read best together; what it calls (the rules, the score, the network, the
selection) lives in modules of its own.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from deepuad.estimators import scoring
from deepuad.estimators.autoencoder import (
    Autoencoder, EagerAdam, Steps, encode_and_score, load_network_state, network_state, place, reconstruct,
)
from deepuad.estimators.base import BaseDetector, _check_width, check_array, not_fitted
from deepuad.estimators.distributed import World
from deepuad.estimators.params import CONSTRAINTS, DEFAULTS, PAPER_READING, SCORE_BATCH_ROWS, check_contamination  # noqa: F401 (PAPER_READING: re-exported beside DeepUAD)
from deepuad.estimators.parts import PAPER, reference_rows
from deepuad.estimators.rows import take_rows  # noqa: F401 (re-exported: tests and callers import it from here)
from deepuad.estimators.rules import RESELECT
from deepuad.estimators.scorer import Scorer
from deepuad.estimators.selection import initial_selection, n_changed


@dataclass
class Iteration:
    """One training-set selection: iteration 0 is the initial clustering."""

    iteration: int
    epoch: int  # training epochs completed when the selection was made
    selected: np.ndarray  # sorted row indices of the training set chosen
    n_changed: int  # indices that entered or left, vs the previous selection
    loss: float  # mean training loss over the epochs since the previous selection (nan for 0)
    threshold: float  # the cut-off the rule applied
    fallback: bool  # a guard had to add rows

    @property
    def n_selected(self) -> int:
        return len(self.selected)


def _from_scorer(name: str) -> property:
    """A learned attribute of the fitted score, read as DeepUAD's own (absent until ``fit`` has fitted it)."""
    return property(lambda self: getattr(self.scorer_, name), doc=f"``scorer_.{name}`` (scorer.Scorer)")


class DeepUAD(BaseDetector):
    """Deep end-to-end unsupervised anomaly detection (the paper's Algorithm 1).

    Parameters mirror the paper's Table 8 (KDDCUP defaults); each is declared, with its default
    and constraints, in ``params.PARAMS``. ``__init__`` only stores them; ``fit`` checks them.
    ``contamination`` only sets ``threshold_``/``labels_``; ``None`` means ``contamination_``, the
    share estimated from the training scores (the paper used p/100, its guess of the anomaly share).

    Learned attributes: ``model_`` (the autoencoder), ``iterations_`` (list of
    ``Iteration``, one per selection, 0 = initial), ``selected_`` (current training set),
    ``epoch_`` (training epochs done), ``epoch_losses_``, ``converged_``, ``stop_reason_``
    ("converged" or "epoch budget"), and after ``fit`` ``scorer_`` (the fitted score, whose
    attributes ``score_parts_``, ``parts_``, ``reference_``, ... read as DeepUAD's own),
    ``decision_scores_``, ``contamination_``, ``threshold_``, ``labels_``.
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
        reference_trim: float | None = DEFAULTS["reference_trim"],
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
                ).selected
            self._start(X.shape[1], np.asarray(initial, dtype=np.int64), len(X))
        self._train(X, callback, world)
        # the score: its parts fitted on a seeded sample of all rows (trimmed by its tails), the range on one of
        # the kept rows, drawn alike (every rank draws the same rows and grows the same forest)
        rows, kept_rows = (reference_rows(np.random.default_rng([self.seed, len(self.iterations_)]), among, self.reference_size)
                           for among in (np.arange(len(X)), self.selected_))
        self.scorer_ = Scorer.fit(self.score, X, rows, self.seed, self.n_neighbors, self.model_, self.device,
                                  kept=np.isin(rows, self.selected_), kept_rows=kept_rows, reference_trim=self.reference_trim)
        scores, counting = self._all_scores(X, world)
        self.decision_scores_ = scores.astype(np.float64)
        self.contamination_ = scoring.estimate_contamination(counting)
        self._process_decision_scores()
        return self

    def _contamination_used(self) -> float:
        return self.contamination if self.contamination is not None else self.contamination_

    def _start(self, n_features: int, selected: np.ndarray, n_rows: int, with_optimizer: bool = True) -> None:
        _check_rows(selected, n_rows, "the initial training set")
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

    def _train(self, X, callback, world) -> None:
        """Algorithm 1's loop: train r epochs on the selected rows, re-select from ALL rows, until
        the selection stops changing or the epoch budget is spent.

        One process is a world of size one: X (a NumPy array) stays whole on the device and each
        epoch shuffles the selected rows. Under torchrun (``world.distributed``) X may be an open
        HDF5 dataset: each rank trains on its block of the selected rows with 1/N of the batch,
        DistributedDataParallel averages the gradients (the global batch stays ``batch_size``),
        each rank measures its 1/N of the rows for a re-selection, and rank 0 chooses."""
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            if len(self.selected_) < world.size:
                raise ValueError(f"the training set has {len(self.selected_)} rows, fewer than the {world.size} processes")
            device_ids = [torch.device(self.device).index] if str(self.device).startswith("cuda") else None
            network = DistributedDataParallel(self.model_, device_ids=device_ids)
        else:
            X, network = place(torch.from_numpy(X), self.device), self.model_
        self._steps = Steps(network, self.optimizer_, self.loss, self.device, self.precision, self.compile)
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
            return float(self._steps.run(rows, order, self.batch_size_)) / len(order)  # one device sync per epoch
        # One seed per epoch from the generator every rank shares (and a checkpoint stores, so a run
        # may resume with another number of processes); each rank shuffles its own block with it.
        epoch_seed = int(torch.randint(2**62, (1,), generator=self._shuffle_rng))
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(epoch_seed + world.rank))
        # every rank must take the same number of steps (each step all-reduces gradients): blocks
        # differ in size by at most one row, so a shorter block repeats its first row
        largest = -(-len(self.selected_) // world.size)
        order = torch.cat([order, order[: largest - len(order)]]).to(rows.device)
        total = self._steps.run(rows, order, -(-self.batch_size_ // world.size))
        loss_sum, count = world.all_sum([float(total), float(len(order))])
        return loss_sum / count

    def _reselect(self, X, world=None) -> np.ndarray | None:
        """S_train = C(z, p) over ALL rows by the rule ``reselect_by`` (rules.RESELECT): each rank
        measures its rows as the rule needs, rank 0 chooses and every rank takes its choice.
        Returns each row's value under the rule (on rank 0; None on the others)."""
        world = world if world is not None else World(device=self.device)
        rule = RESELECT[self.reselect_by]()
        errors, codes = self._encode(X, world, with_codes="codes" in rule.needs) if rule.needs else (None, None)
        chosen = selected = record = None
        if world.is_root:
            chosen = rule.choose(self, X, errors, codes, [self.seed, len(self.iterations_)])
            selected = np.unique(np.asarray(chosen.selected, dtype=np.int64))
            record = np.array([chosen.threshold, chosen.fallback], np.float64)
        if world.distributed:  # every rank takes rank 0's choice
            selected, record = world.broadcast(selected, np.int64), world.broadcast(record, np.float64)
        self._record(selected, float(record[0]), bool(record[1]), len(X))
        return chosen.scores if chosen else None

    def _record(self, selected: np.ndarray, threshold: float, fallback: bool, n_rows: int) -> None:
        """Make ``selected`` the training set; converged when at most tol x n_rows indices changed."""
        _check_rows(selected, n_rows, f"the training set chosen by re-selection rule {self.reselect_by!r}")
        changed = n_changed(self.selected_, selected)
        loss = float(np.mean(self.epoch_losses_[-self.r :]))  # over the epochs since the previous selection
        self.iterations_.append(Iteration(len(self.iterations_), self.epoch_, selected, changed, loss, threshold, fallback))
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
    score_parts_ = _from_scorer("score_parts_")
    parts_ = _from_scorer("parts_")
    reference_ = _from_scorer("reference_")
    reference_kept_ = _from_scorer("reference_kept_")
    score_center_ = _from_scorer("score_center_")
    score_scale_ = _from_scorer("score_scale_")
    score_weights_ = _from_scorer("score_weights_")

    def _scorer(self) -> Scorer:
        """The fitted score; mid-fit, the paper's score (it needs nothing fitted beside the network)."""
        if hasattr(self, "scorer_"):
            return self.scorer_
        if self.score != "cosine":
            raise RuntimeError("DeepUAD has no scorer yet: its training has not finished (score='cosine' scores mid-fit)")
        return Scorer(self.score, PAPER, self.n_features_in_, self.n_neighbors)

    def _scores(self, X, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """(score, counting score) of every row, float32 (scorer.Scorer.scores)."""
        scorer = self._scorer()
        return scorer.scores(scorer.values(X, self.model_, self.device, batch_size)[0])

    def score_parts(self, X, batch_size: int = 65536) -> dict[str, np.ndarray]:
        """Each part of the score (``score_parts_``: name -> values), as it enters the combination
        (parts.py: the log of an error or a distance), for every row of X."""
        X = self._checked(X)
        scorer = self._scorer()
        return dict(zip(scorer.score_parts_, scorer.values(X, self.model_, self.device, batch_size)[0]))

    def decision_function(self, X, batch_size: int = 65536) -> np.ndarray:
        """The anomaly score of every row (float32), higher = more anomalous: the combination of the
        parts (parts.combine) for a score of several parts, the raw part otherwise."""
        return self._scores(self._checked(X), batch_size)[0]

    def reconstruct(self, X, batch_size: int = 65536) -> np.ndarray:
        """decoder(encoder(x)) of every row of X (float32): the row the network expected."""
        return reconstruct(self.model_, self._checked(X), batch_size)

    def _checked(self, X) -> np.ndarray:
        """X as float32 rows as wide as the training data, once there is something to score them
        with: NotFittedError before ``fit``, RuntimeError mid-fit (but for the paper's score),
        ValueError for another width, NaN or infinity."""
        if not hasattr(self, "model_"):
            raise not_fitted(self)
        self._scorer()
        X = check_array(X.numpy() if isinstance(X, torch.Tensor) else X)
        _check_width(self, X)
        return X

    # ----------------------------------------------------------------- pickling, files, checkpoint state
    def __getstate__(self) -> dict:
        """What ``pickle`` and ``joblib`` store: everything but training's step machinery (``Steps``:
        rebuilt by every fit, and not picklable)."""
        return {name: value for name, value in self.__dict__.items() if name != "_steps"}

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

        Arrays are plain NumPy (weights, Adam moments, RNG state, selections, the fitted scorer), so
        a checkpoint can be stored as HDF5 datasets and loaded without unpickling anything.
        """
        # a model loaded to score has no optimiser: its state is then the network and scorer only
        arrays, param_groups = network_state(self.model_, getattr(self, "optimizer_", None))
        arrays["rng_state"] = self._shuffle_rng.get_state().numpy()
        arrays["epoch_losses"] = np.asarray(self.epoch_losses_, dtype=np.float64)
        for it in self.iterations_:
            arrays[f"iterations/{it.iteration}/selected"] = it.selected
        meta = {
            "epoch": self.epoch_,
            "converged": self.converged_,
            "optimizer_param_groups": json.dumps(param_groups),
            "iterations": [
                {k: getattr(it, k) for k in ("iteration", "epoch", "n_changed", "loss", "threshold", "fallback")}
                for it in self.iterations_
            ],
        }
        if hasattr(self, "scorer_"):  # a finished model (a checkpoint has none)
            arrays.update(self.scorer_.state())
            meta["score_parts"] = list(self.score_parts_)
            meta["contamination_estimate"] = getattr(self, "contamination_", None)
        return arrays, meta

    def set_state(self, state: tuple[dict[str, np.ndarray], dict], n_features: int, n_rows: int,
                  with_optimizer: bool = True) -> None:
        """Continue from ``get_state()``'s (arrays, metadata): network, optimiser (unless
        ``with_optimizer`` is False: scoring needs none), shuffling RNG, selections, scorer. A
        corrupt or crafted state fails here (ValueError) instead of indexing out of range later."""
        arrays, meta = state
        self._start(n_features, arrays["iterations/0/selected"], n_rows, with_optimizer)
        load_network_state(self.model_, self.optimizer_ if with_optimizer else None, arrays,
                           json.loads(meta["optimizer_param_groups"]) if with_optimizer else [])
        self._shuffle_rng.set_state(torch.from_numpy(np.array(arrays["rng_state"], dtype=np.uint8)))
        self.epoch_losses_ = [float(v) for v in arrays["epoch_losses"]]
        self.iterations_ = [
            Iteration(
                int(it["iteration"]), int(it["epoch"]), np.asarray(arrays[f"iterations/{it['iteration']}/selected"], dtype=np.int64),
                int(it["n_changed"]), float(it["loss"]), float(it["threshold"]), bool(it["fallback"]),
            )
            for it in meta["iterations"]
        ]
        self.selected_ = self.iterations_[-1].selected
        self.epoch_ = int(meta["epoch"])
        self.converged_ = bool(meta["converged"])
        if "score_parts" in meta:  # a finished model: its scorer too
            self.scorer_ = Scorer.restore(self.score, meta["score_parts"], arrays, n_features, int(self.n_neighbors))
            if meta.get("contamination_estimate") is not None:
                self.contamination_ = float(meta["contamination_estimate"])
                check_contamination(self.contamination_, "the contamination estimate")


def _check_rows(selected: np.ndarray, n_rows: int, what: str) -> None:
    """A training set is at least one row, each one of the n_rows (ValueError otherwise)."""
    if len(selected) == 0:
        raise ValueError(f"{what} is empty")
    if selected.min() < 0 or selected.max() >= n_rows:
        raise ValueError(f"{what} has indices outside [0, {n_rows})")


def auto_layers(n_features: int) -> tuple[int, ...]:
    """Encoder widths sized to the data: d/2 then d/4, at most 64 and 32. The paper's 60-30-10 is
    KDDCUP's (118 columns); on 3 columns it would be over-complete and learn the identity, on
    1,500 it would be slow for nothing."""
    return (min(64, math.ceil(n_features / 2)), max(1, min(32, math.ceil(n_features / 4))))


def auto_batch_size(n_rows: int) -> int:
    """About 16 steps per epoch on small data (a 1024-row batch would give 1 or 2), 1024 from 16k rows on."""
    return int(min(1024, max(32, n_rows // 16)))
