"""deepuad: deep end-to-end unsupervised anomaly detection, in inspectable stages.

The Python API (no file or terminal I/O) is ``deepuad.DeepUAD``; the command-line tool
``deepuad`` (see ``deepuad.cli``) wraps it with HDF5 artifacts between stages.
"""

__version__ = "0.1.0"

__all__ = ["DeepUAD", "__version__"]


def __getattr__(name: str):
    """``deepuad.DeepUAD`` is imported on first use (PEP 562): it pulls in torch,
    seconds that every command (even ``--help`` and ``inspect``) would otherwise pay at start."""
    if name == "DeepUAD":
        from deepuad.estimators.detector import DeepUAD

        return DeepUAD
    raise AttributeError(f"module 'deepuad' has no attribute {name!r}")
