"""Readers and encoders of raw input for ``extract``: ``delimited`` (CSV/TSV), ``tabular`` (a table's
encoding), ``arrays`` (NumPy), ``parquet`` (Parquet, Arrow), ``mnist`` (MNIST IDX), ``images`` (image
folders), ``torchscript`` (image features from a user's model), ``video`` (per-video feature files,
UCF-Crime annotations); ``media`` holds what the last four share, ``one_class`` the one-class task of
a labelled set, ``decoding`` the features back to the original columns. A new input kind gets a
module here and a branch in ``deepuad.stages.extract``."""
