"""``inspect``: everything a person needs to judge an artifact, as a JSON-able dict. The envelope
(kind, versions, params, inputs, datasets) is common; each kind adds its own part with its
``describe`` (``deepuad.artifacts.<kind>``)."""

from __future__ import annotations

from deepuad import artifacts as art


def describe(path) -> dict:
    """Everything a person needs to judge an artifact, as a JSON-able dict."""
    with art.open_artifact(path) as f:
        kind = str(f.attrs["deepuad_kind"])
        info = {
            "path": str(path), "kind": kind, "schema_version": int(f.attrs["deepuad_schema_version"]),
            "deepuad_version": str(f.attrs["deepuad_version"]), "created": str(f.attrs["created"]),
            "fingerprint": str(f.attrs["fingerprint"]), "params": art.params_of(f), "inputs": art.inputs_of(f),
            "datasets": [
                {"name": name, "shape": list(ds.shape), "dtype": str(ds.dtype), "description": str(ds.attrs.get("description", ""))}
                for name, ds in art._datasets(f) if not name.startswith(("weights/", "optimizer/", "iterations/"))
            ],
        }
        info.update(art.KINDS[kind].describe(f, path))
    return info
