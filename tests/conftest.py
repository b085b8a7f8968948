import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

from helpers import build_pipeline, make_table, snapshot

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


@pytest.fixture
def table(tmp_path):
    return make_table(tmp_path / "data.csv")


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The small pipeline, built once per session (once per pytest-xdist worker) through the CLI:
    a 66-row table, its features, clusters, model and scores, and the scores in two shards
    (``helpers.build_pipeline``). Read-only: a test that changes a file copies it into its own
    temporary folder first; after the last test of the worker, the fixture checks that none was changed."""
    folder = tmp_path_factory.mktemp("pipeline")
    paths = build_pipeline(folder, make_table(folder / "table.csv", n_normal=60, n_anomaly=6))
    before = snapshot(folder)
    yield paths
    assert snapshot(folder) == before, f"a test changed the shared pipeline in {folder}: copy it into tmp_path first"
