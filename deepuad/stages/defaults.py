"""The defaults of the stages' own parameters that their commands offer as options too, each
written once: a stage's signature reads it here, and so does its command's option. Standard
library only: the command line builds its options when it starts, without importing a stage
(and the NumPy and h5py a stage imports). DeepUAD's parameters, and those artifacts record, are
the parameter spec's (``deepuad.estimators.params``), as are the baselines' defaults, which their
estimators share."""

# extract, train, score, baseline, run: the device they run on (auto: CUDA when available)
DEVICE = "auto"

EXTRACT = {
    "input_type": "auto",  # told by the input's name (stages.extract.detect_input_type)
    "chunk_rows": 100_000,  # rows of a CSV read at once
    "text_encoding": "utf-8",  # of a CSV
    "size": (32, 32),  # images: height, width
    "segment_frames": 16.0,  # video: frames per feature row (C3D's)
}

TOP = {"n": 20, "explain": 0}  # rows shown; columns explained per row (0: none)
EXPLAIN = {"k": 5}  # columns shown per row
EXPLAIN_TOP = 10  # rows explained, the highest scores, when explain is given neither rows nor top_n
REPORT = {"n": 20, "k": 3}  # top rows shown; columns shown per row
