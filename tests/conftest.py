import contextlib
import io
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

# Real benchmark data lives beside the repository, never inside it: <repo root>/../shared/data
# (CI clones the repository next to a copy of shared/). Resolved from this file, so it holds on
# any machine and from any working directory; tests reach it only through the fixture below.
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips the test, naming the folder, only when the folder is absent.
    A file missing from a folder that is present fails the test instead: that is a broken copy."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (expected at <repo root>/../shared/data)")
    return SHARED_DATA


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


@pytest.fixture
def table(tmp_path):
    return make_table(tmp_path / "data.csv")


def run_cli(capsys, *args):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    from deepuad.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def cli(*args):
    """The CLI in-process without pytest's capsys (for module-scoped fixtures): (code, out, err)."""
    from deepuad.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


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
