"""Readers and encoders of raw input for ``extract``: ``tabular`` (CSV/TSV, NumPy arrays) and
``media`` (MNIST IDX, image folders, video feature files). A new input kind gets a module here and
a branch in ``deepuad.stages.extract``."""
