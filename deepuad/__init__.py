"""deepuad: deep end-to-end unsupervised anomaly detection, in inspectable stages.

The Python API (no file or terminal I/O) is ``deepuad.DeepUAD``; the command-line tool
``deepuad`` (see ``deepuad.cli``) wraps it with HDF5 artifacts between stages.
"""

__version__ = "0.1.0"

from deepuad.detector import DeepUAD  # noqa: E402  (re-export after __version__)

__all__ = ["DeepUAD", "__version__"]
