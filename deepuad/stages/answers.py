"""``top`` and ``explain`` as stage functions: read the artifacts, call inputs/decoding.py and estimators/explain.py,
return JSON-able dicts; and the writers of their outputs (CSV, JSON lines, Parquet, PNG).
No printing: the CLI reports.

Reading follows the artifact rules: every file through its kind's reader (``deepuad.artifacts``);
only the rows asked for are read from X; a scores file must come from the features (and model)
given, by fingerprint, unless ``force``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import scores as scores_artifact
from deepuad.artifacts.features import open_features
from deepuad.inputs.decoding import Decoder, output_names, plain, rank
from deepuad.errors import DataError, InputError, ParamError, RequestError, StaleError
from deepuad.estimators.params import SCORE_BATCH_ROWS
from deepuad.stages.defaults import EXPLAIN, EXPLAIN_TOP, TOP

FORMATS = ("table", "csv", "jsonl", "parquet")
SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
# per-row datasets that extract stores beside X (images/IDX: class_label; video: video, segment)
ROW_DATASETS = ("class_label", "video", "segment")
RESERVED = ("rank", "id", "score", "is_anomaly", "y", *ROW_DATASETS, "why")


def _recorded(scores_inputs: dict, role: str, given, scores_path) -> Path:
    """The ``role`` file given, else the one the scores file records (as recorded, or beside it)."""
    from deepuad.stages._common import recorded_file

    if given is not None:
        return Path(given)
    recorded = (scores_inputs.get(role) or {}).get("path")
    if not isinstance(recorded, str) or not recorded:
        raise RequestError(f"{scores_path} records no {role} file; pass `{role}_path`")
    found = recorded_file(scores_path, scores_inputs, role)
    if found is None:
        raise InputError(f"records its {role} file as {recorded}, which is not there; pass `{role}_path` FILE", scores_path)
    return found


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return plain(value)
    return value if isinstance(value, (int, float, str)) else str(value)


def read_rows(features_path, rows: np.ndarray, expected_rows: int | None = None) -> dict:
    """The features file's X, ids, y and per-row datasets at ``rows`` (any order), its decoder
    and fingerprints. Only those rows of X are read."""
    rows = np.asarray(rows, dtype=np.int64)
    with open_features(features_path, X=None) as features:
        n_rows, width = features.n_rows, features.width
        if expected_rows is not None and n_rows != expected_rows:
            raise StaleError(f"has {n_rows} rows but the scores are for {expected_rows}: not the features they were scored from",
                             features_path)
        try:
            decoder = Decoder(features.encoding(), width)
        except ValueError as error:
            raise InputError(f"{error} (corrupt?)", features_path) from None
        X = features.take(rows)
        ids = features.ids()[rows]
        per_row = {}
        for name in ROW_DATASETS:
            values = features.column(name)
            if values is not None:  # their lengths: declared, as X's rows
                per_row[name] = [_text(v) for v in values[rows]]
        y = features.labels()
        y = None if y is None else y[rows]
        id_columns = features.id_columns(rows)
        info = {"fingerprint": features.fingerprint, "encoding_fingerprint": features.encoding_fingerprint}
    return {"X": X, "ids": [_text(v) for v in ids], "id_columns": id_columns, "per_row": per_row, "y": y, "decoder": decoder,
            "n_rows": n_rows, "width": width, **info}


def _load_model(model_path, features: dict, features_path, force: bool, device: str = "cpu"):
    from deepuad.stages._common import load_scorer

    detector, meta = load_scorer(model_path, device)
    if not meta["complete"] and not hasattr(detector, "score_parts_") and detector.score != "cosine":
        raise InputError("is a checkpoint of an unfinished training run (no scorer yet): finish it with 'deepuad train `resume`'",
                         model_path)
    if features["encoding_fingerprint"] != meta["encoding_fingerprint"] and not force:
        raise StaleError(f"is encoded differently from the data {model_path} was trained on; re-extract it with "
                         "'deepuad extract NEW `like` TRAINING.features.h5' or pass `force`", features_path)
    if features["width"] != meta["architecture"]["n_features"]:
        raise DataError(f"has {features['width']} features but the model expects {meta['architecture']['n_features']}", features_path)
    return detector, meta


# =========================================================================== top
def top(scores_path, features_path=None, n: int | None = TOP["n"], flagged: bool = False, force: bool = False,
        explain: int = TOP["explain"], model_path=None) -> dict:
    """The most anomalous rows of a scores file, ranked, with their ids and their values in the
    original columns; with ``explain`` K > 0 also the K columns that contribute most."""
    if n is not None and n < 1:
        raise ParamError("n", f"must be >= 1, got {n}")
    if explain < 0:
        raise ParamError("explain", f"must be >= 0, got {explain}")
    scored = scores_artifact.read(scores_path)
    scores, is_anomaly, threshold, y, inputs = (scored[key] for key in ("score", "is_anomaly", "threshold", "y", "inputs"))
    features_path = _recorded(inputs, "features", features_path, scores_path)
    chosen = rank(scores, is_anomaly, None if flagged else n, flagged)
    features = read_rows(features_path, chosen, expected_rows=len(scores))
    recorded_fp = (inputs.get("features") or {}).get("fingerprint")
    if recorded_fp != features["fingerprint"] and not force:
        raise StaleError(f"was not scored from {features_path} (its features fingerprint is {str(recorded_fp)[:12]}, the file's "
                         f"{features['fingerprint'][:12]}); pass the features file it was scored from, or `force`", scores_path)
    if y is None:
        y = features["y"]
    else:
        y = y[chosen]
    decoder: Decoder = features["decoder"]
    id_names = output_names(list(features["id_columns"]), RESERVED)  # extract's id columns: shown after the id
    names = output_names(decoder.columns, (*RESERVED, *id_names.values()))
    explanations = None
    if explain:
        from deepuad.estimators.explain import explain_rows

        model_path = _recorded(inputs, "model", model_path, scores_path)
        detector, meta = _load_model(model_path, features, features_path, force)
        recorded_model = (inputs.get("model") or {}).get("fingerprint")
        if recorded_model != meta["fingerprint"] and not force:
            raise StaleError(f"was not scored with {model_path}; pass the model it was scored with, or `force`", scores_path)
        explanations = explain_rows(detector, features["X"], decoder, explain)
    decoded = decoder.decode(features["X"])
    rows = []
    for position, row in enumerate(chosen):
        out = {"rank": position + 1, "id": features["ids"][position],
               **{id_names[name]: values[position] for name, values in features["id_columns"].items()},
               "score": float(f"{scores[row]:.9g}"), "is_anomaly": int(is_anomaly[row])}
        if y is not None:
            out["y"] = int(y[position])
        for name, values in features["per_row"].items():
            out[name] = values[position]
        if explanations is not None:
            out["why"] = explanations[position]["columns"]  # structured in JSON; one line in a flat cell (``cell``)
        out.update({names[column]: value for column, value in decoded[position].items()})
        rows.append(out)
    columns = ["rank", "id", *id_names.values(), "score", "is_anomaly", *(["y"] if y is not None else []), *features["per_row"],
               *(["why"] if explanations is not None else []), *(names[c] for c in decoder.columns)]
    return {"scores": str(scores_path), "features": str(features_path), "rows_total": len(scores),
            "flagged_total": int(np.sum(is_anomaly)), "threshold": threshold, "shown": len(rows),
            "values_shown": bool(decoder.columns) or decoder.width == 0, "columns": columns, "rows": rows}


def output_format(fmt: str | None, output, is_terminal: bool) -> str:
    """``fmt``, else from ``output``'s suffix, else a table on a terminal and CSV in a pipe."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ParamError("fmt", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if fmt == "table" and output is not None:
            raise ParamError("fmt", "table is for a terminal; write a file as csv, jsonl or parquet")
        if fmt == "parquet" and output is None:
            raise ParamError("fmt", "parquet needs `output` FILE (Parquet is binary)")
        return fmt
    if output is not None:
        return SUFFIX_FORMATS.get(Path(output).suffix.lower(), "csv")
    return "table" if is_terminal else "csv"


def cell(row: dict, column: str):
    """A row's value in ``column`` as a flat cell (CSV, Parquet, a table): the ``why`` column's
    per-column records as one line."""
    value = row.get(column)
    if column == "why" and isinstance(value, list):
        from deepuad.estimators.explain import why

        return why({"columns": value})
    return value


def _flat(row: dict, columns: list[str]) -> list:
    return [cell(row, column) for column in columns]


def write_csv(result: dict, handle) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(result["columns"])
    for row in result["rows"]:
        writer.writerow(["" if v is None else v for v in _flat(row, result["columns"])])


def write_jsonl(result: dict, handle) -> None:
    for row in result["rows"]:
        handle.write(json.dumps(row, allow_nan=False, ensure_ascii=False) + "\n")


def parquet_bytes(result: dict) -> bytes:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # a dependency; only a broken install lacks it
        raise ParamError("fmt", "parquet needs pyarrow: pip install pyarrow") from None
    columns = {column: [cell(row, column) for row in result["rows"]] for column in result["columns"]}
    try:
        table = pa.table({name: pa.array(values) for name, values in columns.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed numbers and text: all text
        table = pa.table({name: pa.array([None if v is None else str(v) for v in values]) if _mixed(values) else pa.array(values)
                          for name, values in columns.items()})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _mixed(values) -> bool:
    kinds = {isinstance(v, str) for v in values if v is not None}
    return len(kinds) > 1


def write_rows(result: dict, fmt: str, output) -> str:
    """Write ``result``'s rows to ``output`` atomically (replaced whole, never half-written)."""
    if fmt == "parquet":
        data = parquet_bytes(result)
    else:
        text = io.StringIO()
        (write_csv if fmt == "csv" else write_jsonl)(result, text)
        data = text.getvalue().encode()
    return str(art.write_file_atomically(output, lambda handle: handle.write(data),
                                         [result["scores"], result["features"]]))


# =========================================================================== explain
def _select_by_ids(all_ids, wanted: list[str], features_path) -> np.ndarray:
    lookup: dict[str, int] = {}
    for position, value in enumerate(all_ids):
        lookup.setdefault(str(_text(value)), position)
    rows = []
    for value in wanted:
        if value not in lookup:
            examples = ", ".join(str(_text(v)) for v in all_ids[:3])
            raise ParamError("rows", f"id {value!r} is not in {features_path} (ids look like: {examples})")
        rows.append(lookup[value])
    return np.array(rows, dtype=np.int64)


def explain(model_path, features_path, rows: list[str] | None = None, top_n: int | None = None, scores_path=None,
            k: int = EXPLAIN["k"], plots_dir=None, force: bool = False, batch_rows: int = SCORE_BATCH_ROWS,
            device: str = "cpu") -> dict:
    """Per row (given by id, or the ``top_n`` highest scores), the ``k`` original columns that
    contribute most to its score, with the value the model expected; PNG bar charts in
    ``plots_dir``."""
    from deepuad.estimators.explain import METHOD, explain_rows

    if k < 1:
        raise ParamError("k", f"must be >= 1, got {k}")
    if rows and top_n is not None:
        raise RequestError("give `rows` or `top_n`, not both")
    if top_n is not None and top_n < 1:
        raise ParamError("top_n", f"must be >= 1, got {top_n}")
    if batch_rows < 1:
        raise ParamError("batch_rows", f"must be >= 1, got {batch_rows}")
    top_n = EXPLAIN_TOP if not rows and top_n is None else top_n
    header = read_rows(features_path, np.zeros(0, dtype=np.int64))
    detector, meta = _load_model(model_path, header, features_path, force, device)
    if rows:
        with open_features(features_path, X=None) as features:
            all_ids = features.ids()
        chosen = _select_by_ids(all_ids, rows, features_path)
        scores = None
    elif scores_path is not None:
        scored = scores_artifact.read(scores_path)
        scores, recorded = scored["score"], (scored["inputs"].get("features") or {}).get("fingerprint")
        if len(scores) != header["n_rows"] or (recorded != header["fingerprint"] and not force):
            raise StaleError(f"was not scored from {features_path}; pass its scores file, or `force`", scores_path)
        chosen = rank(scores, n=top_n)
    else:
        from deepuad.artifacts.features import as_finite_float32

        scores = np.empty(header["n_rows"], dtype=np.float32)
        with open_features(features_path, X="disk") as features:
            for begin in range(0, header["n_rows"], batch_rows):
                chunk = as_finite_float32(features.X[begin : begin + batch_rows], features_path, begin)
                scores[begin : begin + len(chunk)] = detector.decision_function(chunk, batch_size=batch_rows)
        chosen = rank(scores, n=top_n)
    data = read_rows(features_path, chosen)
    row_scores = detector.decision_function(data["X"]) if len(chosen) else np.zeros(0)
    explanations = explain_rows(detector, data["X"], data["decoder"], k)
    out_rows = []
    for position, row in enumerate(chosen):
        entry = {"rank": position + 1 if not rows else None, "row": int(row), "id": data["ids"][position],
                 "score": float(row_scores[position]), **explanations[position]}
        if data["id_columns"]:  # extract --id-column: {column: text}
            entry["id_columns"] = {name: values[position] for name, values in data["id_columns"].items()}
        if rows:
            del entry["rank"]
        out_rows.append(entry)
    result = {"model": str(model_path), "features": str(features_path), "score": detector.score,
              "method": METHOD, "rows": out_rows}
    if plots_dir is not None:
        result.update(plot_explanations(out_rows, Path(plots_dir)))
    return result


def plot_explanations(rows: list[dict], folder: Path) -> dict:
    """One horizontal bar chart per row, at most ``plots.MAX_PLOTS`` (the first rows): each
    column's share of the row's score (``explain_rows``), labelled with the row's value and the expected one.
    File names come from the rank (or row) and id. The folder is written as one set
    (``plots.plot_folder``)."""
    from deepuad.stages import plots

    with plots.plot_folder(folder) as draft:
        plt = plots._pyplot()
        drawn = []
        for entry in rows[: plots.MAX_PLOTS]:
            columns = entry["columns"][::-1]
            fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(columns) + 1.4))
            ax.barh(range(len(columns)), [100 * c["share"] for c in columns], color="C3")
            ax.set_yticks(range(len(columns)))
            ax.set_yticklabels([f"{c['column']} = {_short(c['value'])}\n(expected {_short(c['expected'])})" for c in columns], fontsize=8)
            ax.set(xlabel="share of the row's score (%)", title=f"id {_short(entry['id'], 60)}: score {entry['score']:.3g}")
            label = f"rank-{entry['rank']}" if entry.get("rank") else f"row-{entry['row']}"
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(entry["id"]))[:100]  # ids come from the data
            drawn.append(plots._save(fig, draft / f"explain_{label}_{safe}.png"))
    left_out = len(rows) - len(drawn)
    return {"plots": [str(folder / Path(path).name) for path in drawn], **({"plots_not_drawn": left_out} if left_out else {})}


def _short(value, width: int = 24) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
