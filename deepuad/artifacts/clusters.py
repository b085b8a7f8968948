"""The clusters artifact: the initial clustering and the initial training set C(X, p0).
Written by ``cluster`` (``write``); read by ``train`` (``read``: its ``selected`` rows and the p0
and init_by they were chosen with) and ``inspect`` (``describe``). A version-1 file goes through
``_v1_params``, which supplies the parameters it may not record."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from deepuad.artifacts.envelope import inputs_of, Kind, open_artifact, params_of, put, register, schema_version, write_artifact
from deepuad.artifacts.safe_read import finite_threshold, read_array
from deepuad.artifacts.schema import Array, Attr, Flag, Json, Number, param_schema, Record
from deepuad.errors import InputError
from deepuad.estimators.params import recorded, unrecorded


def write(output, selection, params: dict, inputs: dict, n_rows: int, method: str, y) -> None:
    """``selection``: the ``Selection`` of ``initial_selection``; ``y`` (or None): ground truth,
    stored only as diagnostics."""
    with write_artifact(output, "clusters", params, inputs) as f:
        put(f, "assignment", selection.labels, chunked=True)
        put(f, "size", selection.sizes)
        put(f, "variance", selection.variances)
        put(f, "accepted", selection.accepted)
        put(f, "selected", selection.selected, chunked=True)
        f.attrs["threshold"] = selection.threshold
        f.attrs["fallback"] = selection.fallback
        f.attrs["n_rows"] = n_rows
        for name, value in (selection.extra or {}).items():
            if name == "variances":
                continue  # already stored as 'variance'
            if np.ndim(value) == 0:
                f.attrs[f"method_{name}"] = value
            else:
                put(f, f"method_data/{name}", np.asarray(value), f"{method} clustering: {name} per cluster")
        if y is not None:
            share = cluster_anomaly_share(selection.labels, y, len(selection.sizes))
            put(f, "diagnostics/anomaly_share", share, "share of y == 1 in each cluster (diagnostic only)")
            f.attrs["selected_anomaly_share"] = float(np.mean(y[selection.selected]))


def read(path, assignment: bool = False) -> dict:
    """A clusters artifact of any schema version this deepuad reads: ``selected`` (int64 row
    indices), the cluster ``size``, ``variance`` and ``accepted`` arrays, ``threshold``,
    ``fallback``, ``n_rows``, the ``params`` it was made with (every recorded one), its
    ``fingerprint`` and ``inputs``; with ``assignment`` each row's cluster too."""
    with open_artifact(path, "clusters") as f:
        params = params_of(f)
        content = {
            "selected": read_array(f, "selected").astype(np.int64), "size": read_array(f, "size"),
            "variance": read_array(f, "variance"), "accepted": read_array(f, "accepted"),
            "threshold": float(f.attrs["threshold"]), "fallback": bool(f.attrs["fallback"]), "n_rows": int(f.attrs["n_rows"]),
            "params": _v1_params(params) if schema_version(f) == 1 else params,
            "fingerprint": str(f.attrs["fingerprint"]), "inputs": inputs_of(f),
        }
        if assignment:
            content["assignment"] = read_array(f, "assignment")
    return content


def _v1_params(params: dict) -> dict:
    """A version-1 clusters file's parameters and those it may not record, with the value the files
    made before they were recorded were made with (p0 35, init_by variance)."""
    return {**unrecorded("clusters"), **params}


def cluster_anomaly_share(labels: np.ndarray, y: np.ndarray, n_clusters: int) -> np.ndarray:
    keep = labels >= 0
    counts = np.bincount(labels[keep], minlength=n_clusters)
    anomalies = np.bincount(labels[keep], weights=y[keep].astype(float), minlength=n_clusters)
    return np.where(counts > 0, anomalies / np.maximum(counts, 1), np.nan)


def describe(f, path) -> dict:
    sizes, variances = read_array(f, "size"), read_array(f, "variance")
    accepted = read_array(f, "accepted")
    share = read_array(f, "diagnostics/anomaly_share") if "diagnostics/anomaly_share" in f else None
    order = np.argsort(variances, kind="stable")
    clusters = [
        {"cluster": int(k), "size": int(sizes[k]), "variance": float(variances[k]), "accepted": bool(accepted[k]),
         **({"anomaly_share": float(share[k])} if share is not None else {})}
        for k in order if sizes[k] > 0
    ]
    summary = {"threshold": finite_threshold(f, path), "selected": int(f["selected"].shape[0]),
               "rows": int(f.attrs["n_rows"]), "fallback": bool(f.attrs["fallback"]),
               "unclustered": int(np.sum(read_array(f, "assignment") < 0))}
    if "selected_anomaly_share" in f.attrs:
        summary["selected_anomaly_share"] = float(f.attrs["selected_anomaly_share"])
    return {"clusters": clusters, "summary": summary}


def _check_rows(f: h5py.File, path: Path) -> None:
    if f["assignment"].shape[0] != int(f.attrs["n_rows"]):
        raise InputError(f"dataset 'assignment' has {f['assignment'].shape[0]} rows but n_rows is {int(f.attrs['n_rows'])} (corrupt?)", path)


CLUSTERS = "len:size"
# the parameters cluster records (params.recorded("clusters"), and the method's own options): a
# version-2 file records every one; a version-1 file may lack some (_v1_params supplies them)
_PARAMS = {param.key: param_schema(param.constraints) for param in recorded("clusters") if param.constraints}
PARAMS = Record({**_PARAMS, "method_options": Record()}, required=(*_PARAMS, "method_options"))
V1_PARAMS = Record(_PARAMS)
KIND = register(Kind(
    "clusters", check=_check_rows, describe=describe,
    datasets={
        "assignment": Array("i", 1, required=True, values=Number(-1, below=CLUSTERS), length="attr:n_rows"),
        "size": Array("iu", 1, required=True, values=Number(0, high="attr:n_rows")),
        "variance": Array("f", 1, required=True, values=Number(0, nan=True, infinite=True)),  # inf: an empty cluster
        "accepted": Array("b", 1, required=True),
        "selected": Array("iu", 1, required=True, values=Number(0, below="attr:n_rows"), max_len="attr:n_rows"),
        "diagnostics/anomaly_share": Array("f", 1, values=Number(0, 1, nan=True)),
    },
    # a NaN or infinite threshold: exit 4 from finite_threshold, as for scores
    attrs={"threshold": Attr(Number(nan=True, infinite=True), required=True), "fallback": Attr(Flag(), required=True),
           "n_rows": Attr(Number(1, integer=True), required=True), "selected_anomaly_share": Attr(Number(0, 1, nan=True)),
           "params": Attr(Json(PARAMS), required=True)},
    v1_attrs={"params": Attr(Json(V1_PARAMS), required=True)},
    same_length=[[("size", 0), ("variance", 0), ("accepted", 0), ("diagnostics/anomaly_share", 0)]],
    descriptions={
        "assignment": "cluster of each row, -1 = unclustered (never selected)",
        "size": "rows per cluster",
        "variance": "mean squared distance of a cluster's members to its centroid",
        "accepted": "cluster kept in the initial training set",
        "selected": "indices of the rows in the training set",
    },
))
