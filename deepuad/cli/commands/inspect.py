"""``deepuad inspect``: what an artifact holds."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from deepuad.cli.app import app, emit, report, stdout, strict_json
from deepuad.cli.options import Json


@app.command(epilog="Example: deepuad inspect kdd.model.h5")
def inspect(
    file: Annotated[Path, typer.Argument(help="Any deepuad artifact: features, clusters, model, scores or a scores shard.")],
    as_json: Json = False,
):
    """Show an artifact: kind, parameters, provenance, datasets and a per-kind summary."""
    from deepuad.stages.inspect import describe

    info = describe(file)
    if as_json:
        emit(strict_json(info))
        return
    stdout.print(f"[bold]{info['path']}[/bold]: {info['kind']} (schema {info['schema_version']}, deepuad {info['deepuad_version']}, created {info['created']})")
    stdout.print(f"fingerprint {info['fingerprint'][:16]}…")
    stdout.print("params: " + json.dumps(info["params"], sort_keys=True), markup=False, highlight=False)
    for role, source in info["inputs"].items():
        digest = source.get("fingerprint") or source.get("sha256") or ""
        stdout.print(f"input {role}: {source.get('path')} ({digest[:12]}…)", markup=False)
    datasets = Table("dataset", "shape", "dtype", "description", title="datasets", title_justify="left")
    for d in info["datasets"]:
        datasets.add_row(d["name"], "x".join(map(str, d["shape"])) or "scalar", d["dtype"], d["description"])
    stdout.print(datasets)
    if info["kind"] == "clusters":
        table = Table("cluster", "size", "variance", "accepted", *(["anomaly share"] if info["clusters"] and "anomaly_share" in info["clusters"][0] else []),
                      title="clusters by increasing variance", title_justify="left")
        for c in info["clusters"]:
            table.add_row(str(c["cluster"]), str(c["size"]), f"{c['variance']:.4g}", "yes" if c["accepted"] else "no",
                          *([f"{c['anomaly_share']:.3f}"] if "anomaly_share" in c else []))
        stdout.print(table)
    if info["kind"] == "model":
        columns = ["iteration", "epoch", "n_selected", "n_changed", "loss", "auroc", "auprc", "f1", "selected_anomaly_share"]
        present = [c for c in columns if any(c in row for row in info["iterations"])]
        headers = {"iteration": "t", "n_selected": "selected", "n_changed": "changed", "selected_anomaly_share": "anomalies in set"}
        table = Table(*[headers.get(c, c) for c in present], title="iterations (re-selections)", title_justify="left")
        for row in info["iterations"]:
            table.add_row(*[_cell(row.get(c)) for c in present])
        stdout.print(table)
    if info["kind"] == "scores" and info.get("drift", {}).get("measured"):
        drift = info["drift"]
        table = Table("column", "PSI", "encoded column", title=f"drift from the training data ({drift['compared']}; "
                      f"above {drift['act_above']:g}: worth acting on)", title_justify="left")
        for c in drift["columns"][:10]:
            table.add_row(c["column"], f"{c['psi']:.3g}", c["feature"])
        stdout.print(table, markup=False, highlight=False)
    report(info["summary"], False, "summary")


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)
