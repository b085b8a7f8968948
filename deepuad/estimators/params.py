"""The parameter spec: every parameter of DeepUAD and of the stages that run it, each declared
once, with its default, its constraints, its command-line option (flag and help), whether
artifacts record it (and under which name) and whether it may change when a training run
resumes. Everything else is derived from this table:

* DeepUAD's ``__init__`` takes its defaults from ``DEFAULTS`` and checks ``CONSTRAINTS`` in ``fit``;
* the command line builds the options of ``cluster``, ``train``, ``run``, ``score``, ``extract``
  and ``baseline`` from it (``cli.options``), and so names the option of a parameter an error
  names;
* ``train`` and ``cluster`` record ``record(kind, values)``, and ``train --resume`` lets only
  ``RESUMABLE`` differ.

``PARAMS`` holds DeepUAD's parameters and the stage values a model records; ``METHOD_OPTIONS``
the options of the initial clustering methods (``clustering.METHODS``), which a clusters file
records under ``method_options``. The two tables are two namespaces (DeepUAD's ``n_neighbors``
counts a score's neighbours, distribution clustering's its graph's).

Also here: the baselines' defaults, the range of a contamination, the limits of the options that
size memory, and the torchrun environment. Standard library only: the command line builds its
options from this module when it starts, without NumPy, scikit-learn or torch. Longer than 400
lines for its table: every parameter with its option's help text, read best whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

from deepuad.errors import ParamError, RequestError
from deepuad.estimators.constraints import Integral, Interval, Options, Real, Widths, allows, check

# The most an option that sizes memory may ask for, checked where the option is parsed (exit 2,
# the message naming the limit): each allocation they size is linear in rows x the value, so a
# typo (--neighbors 100000000: a 745 GiB kNN table) fails at once instead of after the data is read.
LIMITS = {
    "clusters": 10_000,  # --clusters, --reselect-clusters: GMM/k-means components
    "neighbors": 1_024,  # --neighbors: the kNN table of distribution clustering holds rows x this
    "anchors": 16_384,  # --anchors: distance profiles hold rows x this
    "batch_rows": 1 << 22,  # --batch-size (training rows per step), --batch-rows (rows scored at once)
    "layer_width": 1 << 16,  # --layers: one width
    "layers": 64,  # --layers: how many
    "hidden_weights": 1 << 27,  # --layers: weights between hidden layers (x 16 bytes with Adam's moments: 2 GiB)
    "image_side": 4_096,  # --size: pixels a side
    "reselections": 1_000,  # --epochs // --r: a model keeps a record and a selection of each
}
MAX_EPOCHS = 10**7  # a model holds a loss per epoch
MAX_SEED = 2**32 - 1  # NumPy and scikit-learn take seeds in [0, 2**32)

# the most a contamination may be: more than half the rows "anomalous" would make the normal
# rows the anomalies
MAX_CONTAMINATION = 0.5
CONTAMINATION = (Interval(Real, 0, MAX_CONTAMINATION, closed="right"),)

# the hidden layers' activations (``activation``): autoencoder.ACTIVATIONS maps them to torch's
ACTIVATIONS = ("tanh", "relu")
PERCENT = (Interval(Real, 0, 100, closed="neither"),)  # p0, p: 0 would leave every cluster out, 100 keep every one
CUTOFF = Interval(Real, 0, 100, closed="neither")  # trim's fences, in interquartile ranges


def _scores():
    from deepuad.estimators.parts import scores  # NumPy: read only when a score is checked

    return scores()


def _reselect_rules():
    from deepuad.estimators.rules import RESELECT  # NumPy: read only when a rule is checked

    return RESELECT


def _initial_rules():
    from deepuad.estimators.rules import INITIAL

    return INITIAL


def _clustering_methods():
    from deepuad.estimators.clustering import METHODS  # NumPy: read only when a method is checked

    return METHODS


def _covariance_types():
    from deepuad.estimators.mixture import COVARIANCE_TYPES

    return COVARIANCE_TYPES


def parse_layers(text: str) -> tuple[int, ...] | str:
    """--layers' text: "auto", or comma-separated widths within LIMITS."""
    if text == "auto":
        return text
    try:
        layers = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ParamError("layers", f"must be comma-separated integers like 60,30,10, got {text!r}") from None
    if not layers or min(layers) < 1:
        raise ParamError("layers", f"must be positive widths like 60,30,10, got {text!r}")
    if len(layers) > LIMITS["layers"] or max(layers) > LIMITS["layer_width"]:
        raise ParamError("layers", f"takes at most {LIMITS['layers']} widths of at most {LIMITS['layer_width']:,}, got {text!r}")
    weights = sum(a * b for a, b in zip(layers[:-1], layers[1:]))
    if weights > LIMITS["hidden_weights"]:
        raise ParamError("layers", f"{text} needs {weights:,} weights between its layers (at most {LIMITS['hidden_weights']:,})")
    return layers


def parse_batch_size(text: str) -> int | str:
    """--batch-size's text: "auto" or a whole number of at most LIMITS' rows (its lower bound is
    a constraint, checked with the others)."""
    if text == "auto":
        return text
    try:
        size = int(text)
    except ValueError:
        raise ParamError("batch_size", f"must be 'auto' or a positive integer, got {text!r}") from None
    if size > LIMITS["batch_rows"]:
        raise ParamError("batch_size", f"is at most {LIMITS['batch_rows']:,} rows, got {text!r}")
    return size


def parse_thres(text: str) -> float | str:
    """--thres' text: "auto" or a number (its range is a constraint, checked with the others)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise ParamError("thres", f"must be a positive number or 'auto', got {text!r}") from None


_ABSENT = object()


@dataclass(frozen=True)
class Param:
    """One parameter: its ``name`` in every layer (estimator, stage, command), ``default`` and
    ``constraints`` (in scikit-learn's ``_parameter_constraints`` form: the kinds a value may be)."""

    name: str
    default: object
    constraints: tuple
    help: str = ""  # its option's help text
    commands: tuple[str, ...] = ()  # the commands that offer it as an option
    flags: tuple[str, ...] = ()  # its option's names; none given: "--" + name, "-" for "_"
    cli_type: object = None  # the option's Python type, where the default's is not it
    cli_none: object = None  # the option value that stands for None
    parse: Callable | None = None  # the option's text -> the value, for options given as text
    most: int | None = None  # the largest value the option takes (a memory guard: LIMITS)
    methods: tuple[str, ...] = ()  # the clustering methods that use it (none given: every one)
    recorded_in: tuple[str, ...] = ()  # the artifact kinds whose params record it
    recorded_as: str = ""  # its name there, none given: ``name``
    resumable: bool = False  # recorded, yet may change when training resumes
    estimator: bool = True  # a parameter of DeepUAD (False: a stage's value, or a clustering method's option)
    if_unrecorded: object = _ABSENT  # the value a file made before it was recorded was made with

    @property
    def flag(self) -> str:
        return (self.flags or ("--" + self.name.replace("_", "-"),))[0]

    @property
    def option_names(self) -> tuple[str, ...]:
        return self.flags or (self.flag,)

    @property
    def key(self) -> str:
        """The name an artifact records it under."""
        return self.recorded_as or self.name

    @property
    def cli_default(self):
        """The option's default, as the command line takes it."""
        if self.parse is not None:
            return str(self.default)
        return self.cli_none if self.default is None and self.cli_none is not None else self.default

    @property
    def option_type(self):
        if self.cli_type is not None:
            return self.cli_type
        return str if self.parse is not None else type(self.default)

    def from_option(self, value):
        """The parameter's value from its option's."""
        if self.parse is not None:
            return self.parse(value)
        return None if self.cli_none is not None and value == self.cli_none else value


TRAIN = ("train", "run")  # the commands that train

PARAMS: tuple[Param, ...] = (
    # ---------------------------------------------------------------- the initial selection, C(X, p0)
    Param("p0", 35.0, PERCENT, commands=("cluster", "run"), recorded_in=("model", "clusters"), if_unrecorded=35.0,
          help="Initial threshold in percent: clusters above the (100-p0)th variance percentile are left out."),
    # ---------------------------------------------------------------- training and re-selection
    Param("p", 30.0, PERCENT, commands=TRAIN, recorded_in=("model",), help="Re-selection threshold in percent (p < p0)."),
    Param("r", 10, (Interval(Integral, 1),), commands=TRAIN, flags=("--r", "--reselect-every"), recorded_in=("model",),
          help="Re-select the training set every r epochs (under torchrun write --reselect-every: torchrun takes --r "
          "for its own --rdzv-* options)."),
    Param("epochs", 100, (Interval(Integral, 0, MAX_EPOCHS),), commands=TRAIN, recorded_in=("model",), resumable=True,
          help="Epoch budget."),
    Param("batch_size", "auto", (Options(("auto",)), Interval(Integral, 1)), commands=TRAIN, parse=parse_batch_size,
          recorded_in=("model",), help="Rows per step; auto: n/16 between 32 and 1024."),
    Param("lr", 1e-3, (Interval(Real, 0, closed="neither"),), commands=TRAIN, recorded_in=("model",),
          help="Adam learning rate."),
    Param("layers", "auto", (Options(("auto",)), Widths(Interval(Integral, 1))), commands=TRAIN, parse=parse_layers,
          recorded_in=("model",),
          help="Encoder widths, e.g. 60,30,10 (the decoder mirrors them); auto: d/2, d/4 (at most 64, 32)."),
    Param("activation", "tanh", (Options(ACTIVATIONS),), commands=TRAIN, recorded_in=("model",),
          help="tanh (tabular data) or relu."),
    Param("loss", "mse", (Options(("mse", "cosine")),), commands=TRAIN, recorded_in=("model",),
          help="Training loss: mse or cosine."),
    Param("init_method", "gmm", (Options(_clustering_methods),), commands=("cluster", "run"), flags=("--method",),
          recorded_in=("clusters",), recorded_as="method", help="gmm, kmeans, hdbscan or distribution."),
    Param("init_clusters", 20, (Interval(Integral, 1),), commands=("cluster", "run"), flags=("--clusters",),
          most=LIMITS["clusters"], methods=("gmm", "kmeans"), recorded_in=("clusters",), recorded_as="n_clusters",
          help="gmm/kmeans: number of clusters/components."),
    Param("reselect_clusters", 20, (Interval(Integral, 1),), commands=TRAIN, most=LIMITS["clusters"], recorded_in=("model",),
          help="--reselect-by variance: GMM components on z = [code; error]."),
    Param("reselect_fit_sample", 20000, (None, Interval(Integral, 2)), commands=TRAIN, flags=("--reselect-sample",),
          cli_none=0, recorded_in=("model",),
          help="Fit the re-selection GMM on this many random rows and assign every row (0 = fit on all rows)."),
    Param("percentile_over", "samples", (Options(("clusters", "samples")),), commands=("cluster", *TRAIN),
          recorded_in=("model", "clusters"),
          help="samples: keep the lowest-variance clusters until they cover at least (100-p)% of the rows; clusters: "
          "keep clusters below the (100-p)th percentile of the cluster variances (the paper's literal words)."),
    Param("reselect_by", "variance", (Options(_reselect_rules),), commands=TRAIN, recorded_in=("model",),
          help="trim: keep the rows whose score under the current network is at most --trim-cutoff interquartile ranges "
          "above its upper quartile (with --cluster-cutoff: and drop the clusters of a GMM on z = [code; error] that "
          "stand out as a whole); variance (the paper's): a GMM on z = [code; error], keeping the low-variance "
          "clusters; error: keep the rows whose reconstruction error is below the (100-p)th percentile (cannot win "
          "back a normal mode the initial clustering left out; see docs/fidelity.md)."),
    Param("tol", 0.05, (Interval(Real, 0, 1, closed="left"),), commands=TRAIN, recorded_in=("model",),
          help="Converged when at most tol x N indices change between re-selections (0 = the paper's literal 'no change')."),
    Param("min_fraction", 0.01, (Interval(Real, 0, 1, closed="left"),), commands=("cluster", *TRAIN),
          recorded_in=("model", "clusters"),
          help="Guard: if fewer rows than this share are selected, add clusters in increasing variance (warned, "
          "recorded as fallback)."),
    # ---------------------------------------------------------------- how it runs
    Param("device", "cpu", (str,), recorded_in=("model",), resumable=True),  # the command line's --device resolves "auto" first
    Param("precision", "32", (Options(("32", "bf16", "16")),), commands=("train",), recorded_in=("model",),
          help="32 (default, exact resume), bf16 or 16 (mixed precision, for GPUs)."),
    Param("compile", False, (bool,), commands=("train",), recorded_in=("model",),
          help="torch.compile the network (pays off on GPUs and long runs)."),
    Param("seed", 0, (Interval(Integral, 0, MAX_SEED),), commands=("extract", "cluster", "train", "baseline", "run"),
          recorded_in=("model", "clusters"), help="Random seed: same inputs + seed => same results on CPU."),
    # ---------------------------------------------------------------- the score and its flag rule
    Param("contamination", None, (None, *CONTAMINATION), commands=("score", "run"), cli_type=Optional[float],
          help="Flag this share of rows as anomalies [default: the share of training rows the model's rule flagged: "
          "more than 3 robust sigmas above the median score]."),
    Param("score", "auto", (Options(_scores),), commands=TRAIN, recorded_in=("model",), if_unrecorded="cosine",
          help="auto: distance+tails, but knn+l2+cosine on wide data (200+ columns, and normal rows lying 2+ ranges beyond "
          "some column's kept range by chance: pixels), where the per-column parts are noise, and knn2+l2+range on dense "
          "data (200+ columns, rows within the range, most values distinct: embeddings); distance+tails: the "
          "mean robust z-score of the log squared reconstruction error (the network learns the kept rows), the log "
          "distance to the 5 nearest distinct rows and how deep a row lies in the tails of its columns (ECOD's sum, "
          "both against a sample of all rows less the rows far in its tails: --reference-trim), plus how far a row "
          "lies beyond the kept rows' fenced range in its farthest column; distance+forest: the same with an isolation forest (grown on a sample of the kept rows) "
          "in place of the tails; distance: the error, the distance and the range; knn+l2: the error and the "
          "distance alone; knn+l2+cosine: the same and the paper's cosine error; knn2+l2+range: the distance (weight 2), the error and the range; combined: the log squared error (weight 1) and the forest (weight 2); cosine: the "
          "paper's 1 - cos(x, x_hat); l2, knn, iforest, range, tails: one part alone."),
    Param("n_neighbors", 5, (Interval(Integral, 1),), recorded_in=("model",), if_unrecorded=5),  # score part "knn": mean distance to this many distinct rows
    Param("reference_size", 2000, (Interval(Integral, 2),), recorded_in=("model",)),  # rows the score's parts are fitted on (a sample of all rows)
    # fitted after training: a resumed run may change it
    Param("reference_trim", 1.0, (None, CUTOFF), commands=TRAIN, cli_type=Optional[float], cli_none=0.0,
          recorded_in=("model",), if_unrecorded=None, resumable=True,
          help="Fit the score's parts on the reference rows (a sample of all rows) whose tails value lies at most this "
          "many interquartile ranges above its upper quartile (Tukey's fence), so that a group of anomalies many and "
          "alike is not its own neighbours; 0: every reference row."),
    # ---------------------------------------------------------------- the trim rule (cleaning.py)
    Param("init_by", "variance", (Options(_initial_rules),), commands=("cluster", "run"),
          recorded_in=("model", "clusters"), if_unrecorded="variance",
          help="The first training set. variance (the paper's): the low-variance clusters covering (100-p0)% of the "
          "rows; trim: the rows whose outlyingness (log distance to their 5 nearest rows, log largest per-column "
          "deviation) is at most --trim-cutoff interquartile ranges above its upper quartile, and with "
          "--cluster-cutoff the clusters that do not stand out whole."),
    Param("trim_cutoff", 1.5, (CUTOFF,), commands=("cluster", *TRAIN), recorded_in=("model", "clusters"),
          help="trim: keep rows whose outlyingness is at most this many interquartile ranges above its upper quartile "
          "(Tukey's fence)."),
    Param("cluster_cutoff", None, (None, CUTOFF), commands=("cluster", *TRAIN), cli_type=Optional[float],
          recorded_in=("model", "clusters"),
          help="trim: also drop each cluster whose median outlyingness lies this many interquartile ranges above the "
          "upper quartile [default: none]."),
    # ---------------------------------------------------------------- train's own, recorded in a model
    Param("threads", None, (), recorded_in=("model",), resumable=True, estimator=False),
    Param("processes", None, (), recorded_in=("model",), resumable=True, estimator=False),
)

# the initial clustering methods' options (clustering.METHODS), offered by ``cluster``
_DISTRIBUTION = ("distribution",)
METHOD_OPTIONS: tuple[Param, ...] = (
    Param("covariance_type", "diag", (Options(_covariance_types),), commands=("cluster",), flags=("--covariance",),
          methods=("gmm",), estimator=False,
          help="gmm: covariance type: diag (robust on one-hot data), full, tied, spherical."),
    Param("fit_sample", None, (None, Interval(Integral, 2)), commands=("cluster",), cli_type=Optional[int],
          methods=("gmm", "kmeans", "hdbscan"), estimator=False,
          help="gmm/kmeans/hdbscan: fit on a random sample of this many rows (gmm/kmeans then assign all rows in chunks)."),
    Param("thres", 0.1, (Options(("auto",)), Interval(Real, 0, closed="neither")), commands=("cluster",), parse=parse_thres,
          methods=_DISTRIBUTION, estimator=False, help="distribution: profile-distance threshold, or 'auto'."),
    Param("min_clus", 7, (Interval(Integral, 0),), commands=("cluster",), methods=_DISTRIBUTION, estimator=False,
          help="distribution: a cluster needs more than this many points."),
    # a squared distance between unit vectors: at most 4, unless the rows are not normalised (cluster checks that)
    Param("max_dist", 1.4, (Interval(Real, 0, closed="neither"),), commands=("cluster",), methods=_DISTRIBUTION,
          estimator=False, help="distribution: stop seeding at this seed distance."),
    Param("normalize", "l2", (Options(("l2", "center-l2", "none")),), commands=("cluster",), flags=("--dc-normalize",),
          methods=_DISTRIBUTION, estimator=False, help="distribution: l2, center-l2 or none."),
    Param("n_anchors", 1024, (Interval(Integral, 1),), commands=("cluster",), flags=("--anchors",), most=LIMITS["anchors"],
          methods=_DISTRIBUTION, estimator=False, help="distribution: anchor rows for distance profiles."),
    Param("n_neighbors", 20, (Interval(Integral, 1),), commands=("cluster",), flags=("--neighbors",),
          most=LIMITS["neighbors"], methods=_DISTRIBUTION, estimator=False, help="distribution: kNN graph size for seeding."),
    Param("sample", None, (None, Interval(Integral, 2)), commands=("cluster",), cli_type=Optional[int],
          methods=_DISTRIBUTION, estimator=False,
          help="distribution: cluster this many random rows, assign the rest out of sample."),
    Param("min_cluster_size", 5, (Interval(Integral, 2),), commands=("cluster",), methods=("hdbscan",), estimator=False,
          help="hdbscan: minimum cluster size."),
)

SPEC = {param.name: param for param in PARAMS}
METHOD_SPEC = {param.name: param for param in METHOD_OPTIONS}

# DeepUAD's parameters: defaults (its ``__init__`` signature) and constraints (checked by ``fit``)
DEFAULTS = {param.name: param.default for param in PARAMS if param.estimator}
CONSTRAINTS = {param.name: param.constraints for param in PARAMS if param.estimator}

# the recorded parameters a training run may change when it resumes: more epochs, another device,
# thread or process count
RESUMABLE = tuple(param.key for param in PARAMS if "model" in param.recorded_in and param.resumable)


def options_of(command: str) -> tuple[Param, ...]:
    """The parameters ``command`` offers as options, in the table's order."""
    return tuple(param for param in PARAMS + METHOD_OPTIONS if command in param.commands)


def check_params(values: dict, table: dict = SPEC) -> None:
    """ParamError for the first of ``values`` (parameter name -> value) that breaks its constraints."""
    for name, value in values.items():
        check(name, value, table[name].constraints)


def recorded(kind: str) -> tuple[Param, ...]:
    """The parameters an artifact of ``kind`` ("model", "clusters") records."""
    return tuple(param for param in PARAMS if kind in param.recorded_in)


def record(kind: str, values: dict) -> dict:
    """What an artifact of ``kind`` records of ``values`` (parameter name -> value): each under its
    recorded name, a tuple as the JSON list it is stored as."""
    return {param.key: list(values[param.name]) if isinstance(values[param.name], tuple) else values[param.name]
            for param in recorded(kind)}


def from_record(kind: str, params: dict) -> dict:
    """The parameter values an artifact of ``kind`` recorded (its ``params``, as its kind's reader
    hands them out), by parameter name; a parameter it does not record is left out."""
    return {param.name: params[param.key] for param in recorded(kind) if param.key in params}


def unrecorded(kind: str) -> dict:
    """{recorded name: value} of the parameters that artifacts of ``kind`` record only since some
    release of schema version 1, with the value the files made before it were made with: what a
    version-1 reader supplies (``deepuad.artifacts.model``, ``clusters``)."""
    return {param.key: param.if_unrecorded for param in recorded(kind) if param.if_unrecorded is not _ABSENT}


# The paper's literal reading (docs/fidelity.md): DeepUAD(**PAPER_READING), `--paper` on the
# command line (cluster and train)
PAPER_READING = {"percentile_over": "clusters", "tol": 0.0, "score": "cosine"}

# rows scored per batch by ``score`` and ``explain``: shards are cut at multiples of it
# (artifacts.shard.shard_rows), so shards and the unsharded run they equal must share it
SCORE_BATCH_ROWS = 16384

# the baselines' defaults that the ``baseline`` command offers as options too (the autoencoder
# baseline's lr, activation and loss are DeepUAD's)
BASELINE_DEFAULTS = {
    "method": "iforest",  # the command's: baselines.BASELINES names them all
    "contamination": 0.1,
    "batch_size": 1024,
    "layers": (60, 30, 10),  # the autoencoder's: the paper's KDDCUP network
    "max_train_samples": 10000,  # OC-SVM (baselines.OCSVMDetector says why)
}
# the ``baseline`` command's epochs and learning rate of the two networks; DAGMMDetector's own
# default is its paper's 200 epochs, the command's 100
BASELINE_EPOCHS = {"ae": 200, "dagmm": 100}
BASELINE_LR = {"ae": DEFAULTS["lr"], "dagmm": 1e-4}

# the initial clustering methods' defaults: their options' (METHOD_OPTIONS) and the GMM's own
CLUSTERING_DEFAULTS = {
    **{param.name: param.default for param in METHOD_OPTIONS},
    "reg_covar": 1e-4,
    "init_sample": 20000,  # gmm: its k-means initialisation on at most this many rows (mixture.py says why)
}


def is_contamination(value) -> bool:
    """The one test of a contamination (the share of rows flagged as anomalies): a number in
    (0, 0.5]. Estimators, stages and artifact readers all ask this one."""
    return allows(CONTAMINATION[0], value)


def check_contamination(value, name: str = "contamination") -> None:
    """ParamError (a ValueError) "<name> must be a number in (0, 0.5], got <value>"."""
    check(name, value, CONTAMINATION)


# the environment torchrun gives each process (the defaults: no torchrun), and the largest world
TORCHRUN_VARIABLES = {"WORLD_SIZE": 1, "RANK": 0, "LOCAL_WORLD_SIZE": 1, "LOCAL_RANK": 0}
MAX_WORLD_SIZE = 1 << 16


def torchrun_environment() -> dict[str, int]:
    """WORLD_SIZE, RANK, LOCAL_WORLD_SIZE and LOCAL_RANK as whole numbers, or RequestError (exit 2)
    naming the variable: each in [0, MAX_WORLD_SIZE] (sizes from 1) and, in a world of more than
    one process, each rank below its size. Read here once for every reader (the CLI, World)."""
    values = {}
    for name, default in TORCHRUN_VARIABLES.items():
        text = os.environ.get(name, str(default)).strip()
        value = int(text) if text.isdigit() and len(text) <= 9 else -1
        if not default <= value <= MAX_WORLD_SIZE:
            raise RequestError(f"environment variable {name} must be a whole number in [{default}, {MAX_WORLD_SIZE}], "
                               f"got {text[:40]!r}")
        values[name] = value
    if values["WORLD_SIZE"] > 1:
        for rank, size in (("RANK", "WORLD_SIZE"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE")):
            if values[rank] >= values[size]:
                raise RequestError(f"environment variable {rank}={values[rank]} is not below {size}={values[size]}")
    return values
