"""What the test modules share: the CLI run in-process, small generated inputs, the small
pipeline's steps, and the checks of the error contract (one clean line, nothing changed, no
temporary file left). Test modules import from here, never from each other; fixtures live in
conftest.py."""

import contextlib
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KDD_SAMPLE = ROOT / "sample_data" / "kddcup99_5k.csv.gz"  # 5,000 rows of KDDCUP 99, in the repository
# child processes: one thread, and this checkout's package first
CHILD_ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
# A child script whose own Ctrl-C handler is Python's: a shell without job control starts background
# jobs with SIGINT ignored, and a child would inherit that.
TAKE_CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


# --------------------------------------------------------------------------- the command line
def run_cli(capsys, *args):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    from deepuad.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def cli(*args):
    """The CLI in-process without pytest's capsys (for fixtures wider than a test): (code, out, err)."""
    from deepuad.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


IN_PROCESS_CHILD = """
import contextlib, io, json, resource, sys
from deepuad.cli import main
import torch  # imported before the memory baseline is taken
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
results = []
for file_size, args in json.loads(sys.argv[1]):
    if file_size is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as exit_:
            code = exit_.code
    results.append([code, err.getvalue(), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024])
print(json.dumps(results))
"""


def run_in_child(folder: Path, commands, file_sizes=None, preexec_fn=None) -> list:
    """Run CLI commands one after another in one child process started in ``folder`` (where a
    limit of the process is what is tested: its memory, its file sizes). ``file_sizes``: each
    command's RLIMIT_FSIZE in bytes (None: the child's own); ``preexec_fn``: run in the child before
    Python starts. Returns, per command, [exit code, stderr, MB the peak memory grew by so far]."""
    commands = [[str(a) for a in args] for args in commands]
    sizes = file_sizes if file_sizes is not None else [None] * len(commands)
    child = subprocess.run([sys.executable, "-c", IN_PROCESS_CHILD, json.dumps(list(zip(sizes, commands, strict=True)))],
                           capture_output=True, text=True, env=CHILD_ENV, cwd=folder, preexec_fn=preexec_fn, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]  # no segfault, no crash of the child
    return json.loads(child.stdout)


# --------------------------------------------------------------------------- the error contract
def clean_error(err: str) -> bool:
    """Exactly one line, 'deepuad: error: ...', and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("deepuad: error: ") and "Traceback" not in err


def snapshot(*folders: Path) -> dict:
    """Every entry under the folders (hidden ones too) -> SHA-256 of a regular file's bytes, or
    its kind: 'dir', 'link to ...', 'special' (reading a FIFO would block)."""
    state = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                state[str(path)] = "link to " + os.readlink(path)
            elif path.is_file():
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                state[str(path)] = "dir" if path.is_dir() else "special"
    return state


def temp_litter(folder: Path) -> list[str]:
    """The names of the temporary files left under ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------- generated inputs
def make_table(path, n_normal=400, n_anomaly=40, seed=0, with_label=True):
    """A small CSV: two normal modes + scattered anomalies, a categorical column and a label."""
    rng = np.random.default_rng(seed)
    rows = ["a,b,c,d,proto,label"]
    for i in range(n_normal):
        mode = i % 2
        base = np.array([1.0, 2.0, 0.5, 3.0]) if mode else np.array([4.0, 0.5, 2.0, 1.0])
        x = base + 0.05 * rng.normal(size=4)
        rows.append(",".join(f"{v:.4f}" for v in x) + f",{'tcp' if mode else 'udp'},ok")
    for _ in range(n_anomaly):
        x = rng.uniform(0, 5, size=4)
        rows.append(",".join(f"{v:.4f}" for v in x) + f",{rng.choice(['tcp', 'udp', 'icmp'])},bad")
    if not with_label:
        rows = [",".join(r.split(",")[:-1]) for r in rows]
    path.write_text("\n".join(rows) + "\n")
    return path


def make_media(folder: Path, rng: np.random.Generator, images_per_class: int, segments: int) -> None:
    """folder/imgs: two classes (cats, dogs) of 4x4 grey PNGs; folder/vid: two per-video feature
    files of ``segments`` rows and 40 columns, one of them an anomaly video by its name."""
    from PIL import Image

    for cls in ("cats", "dogs"):
        (folder / "imgs" / cls).mkdir(parents=True)
        for i in range(images_per_class):
            Image.fromarray(rng.integers(0, 255, (4, 4), dtype=np.uint8)).save(folder / "imgs" / cls / f"{i}.png")
    (folder / "vid").mkdir()
    for name in ("Robbery001_x264", "Normal_Videos_002_x264"):
        np.savetxt(folder / "vid" / f"{name}.txt", rng.normal(size=(segments, 40)))


IDX_CODES = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    """``array`` as an IDX file (MNIST's format), gzip-compressed or not."""
    code = IDX_CODES[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def write_scores(path, values, params=None):
    """A minimal scores artifact written directly: ``values``, no flagged row, a threshold above them all."""
    from deepuad import artifacts as art

    with art.write_artifact(path, "scores", params or {}, {}) as f:
        art.put(f, "score", np.asarray(values, dtype=np.float32))
        art.put(f, "is_anomaly", np.zeros(len(values), np.int8))
        f.attrs.update(threshold=float(np.max(values, initial=0)) + 1, contamination=np.nan, metrics="{}")


def write_fake_scores(features, output, scores, contamination=0.1):
    """A complete scores artifact of ``features`` holding the given ``scores`` (no model needed)."""
    from deepuad import artifacts as art
    from deepuad.artifacts.scores import write_scores as write

    inputs = {"features": {"path": str(features), "fingerprint": art.fingerprint_of(features)}}
    params = {"contamination": contamination, "threshold": None, "device": "cpu", "batch_rows": 16384}
    with h5py.File(features) as f:
        y = f["y"][()] if "y" in f else None
    write(output, params, inputs, len(scores), iter([(0, np.asarray(scores, np.float32))]), y, contamination, None)
    return output


# --------------------------------------------------------------------------- artifacts
def rewrite(path: Path, edit) -> Path:
    """Apply ``edit(h5py.File)`` to an artifact and re-fingerprint it, so that only the edit differs."""
    from deepuad import artifacts as art

    with h5py.File(path, "a") as f:
        edit(f)
        f.attrs["fingerprint"] = art.content_fingerprint(f)
    return path


def replace_dataset(f: h5py.File, name: str, data=None, **kwargs) -> None:
    del f[name]
    f.create_dataset(name, data=data, **kwargs)


# --------------------------------------------------------------------------- the small pipeline
# tiny on purpose: the tests that use it are about behaviour around the files, not detection quality
TRAIN = ["--epochs", "2", "--r", "1", "--layers", "4,2", "--reselect-clusters", "3", "--batch-size", "32",
         "--device", "cpu", "--threads", "1"]
KINDS = ("features", "clusters", "model", "scores")


def build_pipeline(folder: Path, table: Path) -> dict:
    """The four artifacts of ``table`` (``KINDS``) and its scores in two shards (``shard0``,
    ``shard1``, 32 rows a batch), made with paths relative to ``folder``: the recorded input paths,
    and so the files' bytes and the fuzz test's corrupted offsets, do not depend on where
    ``folder`` is."""
    steps = [
        ("extract", os.path.relpath(table, folder), "--label-column", "label", "--anomaly-values", "bad", "-o", "features.h5"),
        ("cluster", "features.h5", "--clusters", "3", "-o", "clusters.h5"),
        ("train", "features.h5", "clusters.h5", "-o", "model.h5", *TRAIN),
        ("score", "model.h5", "features.h5", "-o", "scores.h5", "--threads", "1"),
        *[("score", "model.h5", "features.h5", "--shard", f"{index}/2", "--batch-rows", "32", "-o", f"shard{index}.h5")
          for index in (0, 1)],
    ]
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for step in steps:
            code, _, err = cli(*step)
            assert code == 0, (step, err)
    finally:
        os.chdir(cwd)
    return {"table": table, **{name: folder / f"{name}.h5" for name in (*KINDS, "shard0", "shard1")}}
