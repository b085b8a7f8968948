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
from functools import partial
from pathlib import Path

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import scores as scores_artifact
from deepuad.artifacts.features import open_features
from deepuad.inputs.decoding import Coded, Decoder, Plain, output_names, plain, python_values, rank, round_significant
from deepuad.errors import DataError, InputError, ParamError, RequestError, StaleError
from deepuad.stages import rows_text
from deepuad.estimators.params import SCORE_BATCH_ROWS
from deepuad.stages.defaults import EXPLAIN, EXPLAIN_TOP, TOP

FORMATS = ("table", "csv", "jsonl", "parquet")
SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
# per-row datasets that extract stores beside X (images/IDX: class_label; video: video, segment)
ROW_DATASETS = ("class_label", "video", "segment")
RESERVED = ("rank", "id", "score", "is_anomaly", "y", *ROW_DATASETS, "why")
# rows top builds and writes at a time (a Parquet row group each): its memory does not grow with the rows listed
CHUNK_ROWS = 65_536
# the most flagged rows top explains (`flagged` with `explain`): an explanation scores its row once per original column
# (docs/threat-model.md: some models take 40 ms a row), and a file decides how many rows are flagged; `n` decides
# for the user
EXPLAIN_FLAGGED = 100


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


def _column(values: np.ndarray):
    """``[_text(v) for v in values]`` as a column of a chunk of rows: integers as int64 and
    floats as ``Plain`` (NumPy arrays), text as ``Coded``, anything else as a list."""
    if values.dtype.kind == "i" or (values.dtype.kind == "u" and values.dtype.itemsize < 8):
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        return Plain.of(values)
    if values.dtype.kind in "SO":
        return Coded.of(values, _text)
    return [_text(v) for v in values]


def read_rows(features_path, rows: np.ndarray, expected_rows: int | None = None, columns: bool = False) -> dict:
    """The features file's X, ids, y and per-row datasets at ``rows`` (any order), its decoder
    and fingerprints. Only those rows of X are read. Ids and per-row values are lists, or with
    ``columns`` the columns ``_column`` makes."""
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
                per_row[name] = _column(values[rows])
        y = features.labels()
        y = None if y is None else y[rows]
        id_columns = features.id_columns(rows)
        info = {"fingerprint": features.fingerprint, "encoding_fingerprint": features.encoding_fingerprint}
    ids = _column(np.asarray(ids))
    if not columns:
        ids, per_row = python_values(ids), {name: python_values(values) for name, values in per_row.items()}
    return {"X": X, "ids": ids, "id_columns": id_columns, "per_row": per_row, "y": y, "decoder": decoder,
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
        explain: int = TOP["explain"], model_path=None, chunk_rows: int = CHUNK_ROWS) -> dict:
    """The most anomalous rows of a scores file, ranked, with their ids and their values in the
    original columns; with ``explain`` K > 0 also the K columns that contribute most.

    Returns the summary (``columns`` among it) and ``chunks(explained=True, limit=None)``: a
    function that yields the rows (the first ``limit``), in rank order, ``chunk_rows`` at a time,
    as {column: values} (``row_dicts`` makes rows of them; ``why`` is left empty unless
    ``explained``). The listed rows' X is read once, here; the rows themselves are built chunk by chunk
    as they are written, so that listing a million rows takes no more memory than a few."""
    if n is not None and n < 1:
        raise ParamError("n", f"must be >= 1, got {n}")
    if explain < 0:
        raise ParamError("explain", f"must be >= 0, got {explain}")
    scored = scores_artifact.read(scores_path)
    scores, is_anomaly, threshold, y, inputs = (scored[key] for key in ("score", "is_anomaly", "threshold", "y", "inputs"))
    features_path = _recorded(inputs, "features", features_path, scores_path)
    chosen = rank(scores, is_anomaly, None if flagged else n, flagged)
    if flagged and explain and len(chosen) > EXPLAIN_FLAGGED:
        raise RequestError(f"{len(chosen):,} rows are flagged, and `flagged` with `explain` explains {EXPLAIN_FLAGGED} at "
                           "most (each is scored once per original column): explain the first ones with `n` N `explain` "
                           f"{explain}, or list them all without `explain`", scores_path)
    features = read_rows(features_path, chosen, expected_rows=len(scores), columns=True)
    recorded_fp = (inputs.get("features") or {}).get("fingerprint")
    if recorded_fp != features["fingerprint"] and not force:
        raise StaleError(f"was not scored from {features_path} (its features fingerprint is {str(recorded_fp)[:12]}, the file's "
                         f"{features['fingerprint'][:12]}); pass the features file it was scored from, or `force`", scores_path)
    y = features["y"] if y is None else y[chosen]
    decoder: Decoder = features["decoder"]
    id_names = output_names(list(features["id_columns"]), RESERVED)  # extract's id columns: shown after the id
    names = output_names(decoder.columns, (*RESERVED, *id_names.values()))
    detector = None
    if explain:
        model_path = _recorded(inputs, "model", model_path, scores_path)
        detector, meta = _load_model(model_path, features, features_path, force)
        recorded_model = (inputs.get("model") or {}).get("fingerprint")
        if recorded_model != meta["fingerprint"] and not force:
            raise StaleError(f"was not scored with {model_path}; pass the model it was scored with, or `force`", scores_path)
    columns = ["rank", "id", *id_names.values(), "score", "is_anomaly", *(["y"] if y is not None else []), *features["per_row"],
               *(["why"] if explain else []), *(names[c] for c in decoder.columns)]

    def rows_at(start: int, stop: int, explained: bool = True) -> dict:
        """Rows ``start:stop`` of the listing, by column (``why`` empty unless ``explained``):
        NumPy arrays of numbers or lists, as ``rows_text`` takes them."""
        X = features["X"][start:stop]
        out = {"rank": np.arange(start + 1, stop + 1, dtype=np.int64), "id": features["ids"][start:stop],
               **{id_names[name]: values[start:stop] for name, values in features["id_columns"].items()},
               "score": round_significant(scores[chosen[start:stop]], 9),
               "is_anomaly": is_anomaly[chosen[start:stop]].astype(np.int64)}
        if y is not None:
            out["y"] = np.asarray(y[start:stop]).astype(np.int64)
        out.update({name: values[start:stop] for name, values in features["per_row"].items()})
        if detector is not None:
            from deepuad.estimators.explain import explain_rows

            out["why"] = ([row["columns"] for row in explain_rows(detector, X, decoder, explain)] if explained  # ``cell`` flattens
                          else [""] * (stop - start))
        decoded = decoder.decode_columns(X)
        out.update({names[column]: decoded[column] for column in decoder.columns})
        return out

    def chunks(explained: bool = True, limit: int | None = None):
        stop = len(chosen) if limit is None else min(limit, len(chosen))
        for start in range(0, max(stop, 1), chunk_rows):  # at least one chunk: no rows still have columns
            yield rows_at(start, min(start + chunk_rows, stop), explained)

    return {"scores": str(scores_path), "features": str(features_path), "rows_total": len(scores),
            "flagged_total": int(np.sum(is_anomaly)), "threshold": threshold, "shown": len(chosen),
            "values_shown": bool(decoder.columns) or decoder.width == 0, "columns": columns, "chunks": chunks}


def row_dicts(result: dict, limit: int | None = None) -> list[dict]:
    """``top``'s rows as {column: value} dicts, in rank order (the first ``limit``)."""
    rows: list[dict] = []
    for chunk in result["chunks"](limit=limit):
        rows += [dict(zip(chunk, values)) for values in zip(*map(python_values, chunk.values()))]
    return rows


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


def _flat_columns(chunk: dict) -> dict:
    """A chunk with its ``why`` column as one line a cell (``cell``)."""
    if "why" not in chunk:
        return chunk
    return {column: [cell({column: value}, column) for value in values] if column == "why" else values
            for column, values in chunk.items()}


def _rows_in(chunk: dict) -> int:
    return len(chunk["rank"])


def write_csv(result: dict, write) -> None:
    """The rows as CSV (as csv.writer writes them, "\n" lines), passed to ``write(text)`` a
    chunk at a time."""
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(result["columns"])
    write(header.getvalue())
    for chunk in result["chunks"]():
        write(rows_text.csv_text(list(_flat_columns(chunk).values()), _rows_in(chunk)))


def write_jsonl(result: dict, write) -> None:
    """The rows as JSON lines (``json.dumps(row, ensure_ascii=False)``), a chunk at a time."""
    dumps = partial(json.dumps, allow_nan=False, ensure_ascii=False)
    for chunk in result["chunks"]():
        write(rows_text.json_text(list(chunk), list(chunk.values()), _rows_in(chunk), False, dumps, "\n"))


def write_json(result: dict, write, dumps) -> None:
    """``dumps`` of the whole result with its rows (``dumps`` is strict_json: ASCII, keys
    sorted), written a chunk of rows at a time."""
    summary = {key: value for key, value in result.items() if key != "chunks"}
    head, tail = dumps({**summary, "rows": []}).split('"rows": []', 1)  # keys are sorted: "rows" sits among them once
    write(head + '"rows": [')
    separator = ""
    for chunk in result["chunks"]():
        names = sorted(chunk)
        text = rows_text.json_text(names, [chunk[name] for name in names], _rows_in(chunk), True, dumps, ", ")
        if text:
            write(separator + text[: -len(", ")])
            separator = ", "
    write("]" + tail)


def write_parquet(result: dict, handle) -> None:
    """The rows as Parquet, a row group a chunk, to the binary ``handle``. Each column has the
    type pyarrow gives the whole column at once (found in a first pass over the chunks, without
    the explanations, which are text): int64, double, text (also for a column that mixes
    numbers and text) or null (no value at all)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # a dependency; only a broken install lacks it
        raise ParamError("fmt", "parquet needs pyarrow: pip install pyarrow") from None
    types: dict[str, set] = {column: set() for column in result["columns"]}
    for chunk in result["chunks"](explained=False):
        for column, values in chunk.items():
            types[column].add(_arrow_type(pa, values))
    schema = pa.schema([(column, _one_type(pa, types[column])) for column in result["columns"]])
    with pq.ParquetWriter(handle, schema) as writer:
        for chunk in result["chunks"]():
            chunk = _flat_columns(chunk)
            arrays = [_arrow_array(pa, chunk[field.name], field.type) for field in schema]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def _arrow_type(pa, values):
    if not len(values):
        return pa.null()
    if isinstance(values, Coded):  # the values its rows hold
        values = [values.values[code] for code in np.unique(values.codes)]
    if isinstance(values, Plain):
        return pa.int64() if values.whole().all() else pa.float64()
    if isinstance(values, np.ndarray):
        return pa.from_numpy_dtype(values.dtype)
    return pa.string() if _mixed(values) else pa.array(values).type


def _arrow_array(pa, values, kind):
    if isinstance(values, np.ndarray) and kind in (pa.int64(), pa.float64()):
        numbers = values.view(np.ndarray) + (0.0 if isinstance(values, Plain) else 0)  # plain's int 0 for -0.0
        return pa.array(numbers.astype(kind.to_pandas_dtype()))
    values = python_values(values)
    if kind == pa.string() and any(not isinstance(v, str) for v in values if v is not None):
        values = [None if v is None else str(v) for v in values]  # numbers in a column of text
    return pa.array(values, type=kind)


def _one_type(pa, types: set):
    """The type of a column whose chunks have ``types``: nulls take the others' type, whole
    numbers with fractions are floats, anything else mixed is text."""
    types = types - {pa.null()} or {pa.null()}
    if len(types) == 1:
        return types.pop()
    return pa.float64() if types == {pa.int64(), pa.float64()} else pa.string()


def _mixed(values) -> bool:
    kinds = {isinstance(v, str) for v in values if v is not None}
    return len(kinds) > 1


def write_rows(result: dict, fmt: str, output) -> str:
    """Write ``result``'s rows to ``output`` atomically (replaced whole, never half-written)."""
    def write(handle):
        if fmt == "parquet":
            write_parquet(result, handle)
        else:
            (write_csv if fmt == "csv" else write_jsonl)(result, lambda text: handle.write(text.encode()))

    return str(art.write_file_atomically(output, write, [result["scores"], result["features"]]))


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
