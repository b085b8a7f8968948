"""Each command imports only what it needs: importing torch, scikit-learn, pandas or
torch._dynamo costs 0.4 to 3 s per process, more than the work itself on a small table
(bench/results/cost.md). Each command runs in a fresh interpreter that then lists the heavy
modules it ended up with."""

import subprocess
import sys

import numpy as np
import pytest

HEAVY = ("torch", "torch._dynamo", "sklearn", "pandas", "pyarrow")

# after the command, print which of HEAVY are loaded
PROBE = """
import sys
from deepuad.cli import app
try:
    app(args=sys.argv[1:], prog_name="deepuad", standalone_mode=False)
finally:
    print("LOADED", ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def loaded_by(*args: str, cwd) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), "--quiet", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED"))
    return set(filter(None, line.split(" ", 1)[1].split(",")))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imports")
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", X=rng.normal(size=(200, 5)).astype(np.float32))
    return folder


def test_each_command_imports_only_what_it_needs(folder):
    # extract of a NumPy file: no pandas (tables only), no torch, no scikit-learn
    assert loaded_by("extract", "data.npz", "-o", "f.h5", cwd=folder).isdisjoint(HEAVY)
    # cluster (GMM, k-means initialised): NumPy only; scikit-learn (~2 s, with pandas where installed) only
    # for the methods that are its own (--method kmeans or hdbscan)
    assert loaded_by("cluster", "f.h5", "-o", "c.h5", "--clusters", "4", cwd=folder).isdisjoint(HEAVY)
    # train: torch, but never torch._dynamo (torch's optimiser wrappers import it: 2-3 s), nor scikit-learn
    # (the mixture's k-means and the isolation forest are deepuad's own)
    loaded = loaded_by("train", "f.h5", "c.h5", "-o", "m.h5", "--epochs", "4", "--r", "2", cwd=folder)
    assert "torch" in loaded and loaded.isdisjoint({"torch._dynamo", "sklearn", "pandas"})
    # score of the rows the model was trained on takes the scores train stored: nothing heavy at all
    assert loaded_by("score", "m.h5", "f.h5", "-o", "s.h5", cwd=folder).isdisjoint(HEAVY)
    # score of other rows runs the network and the forest's arrays: torch, but no scikit-learn
    # (its import alone is ~2 s)
    np.savez(folder / "new.npz", X=np.random.default_rng(1).normal(size=(50, 5)).astype(np.float32))
    assert loaded_by("extract", "new.npz", "--like", "f.h5", "-o", "new.h5", cwd=folder).isdisjoint(HEAVY)
    loaded = loaded_by("score", "m.h5", "new.h5", "-o", "s2.h5", cwd=folder)
    assert "torch" in loaded and "torch._dynamo" not in loaded and "sklearn" not in loaded


@pytest.mark.parametrize("foreach", [None, True])
def test_eager_adam_is_torch_adam(foreach):
    """EagerAdam skips torch's wrappers, not the update: same weights and state_dict as
    torch.optim.Adam after steps, a save and a load; with ``foreach=True`` (DeepUAD's: one op
    over all tensors) the same numbers as torch's default loop over the tensors."""
    import torch

    from deepuad.estimators.autoencoder import Autoencoder, EagerAdam

    def train(optimizer_class, **options):
        torch.manual_seed(0)
        net = Autoencoder(7, (4, 2))
        X = torch.randn(64, 7, generator=torch.Generator().manual_seed(1))
        initial = net.encoder[0].weight.detach().clone()
        optimizer = optimizer_class(net.parameters(), lr=1e-2, **options)
        for step in range(30):
            if step == 20:  # continue from a saved state, as --resume does
                saved = optimizer.state_dict()
                optimizer = optimizer_class(net.parameters(), lr=1e-2, **options)
                optimizer.load_state_dict(saved)
            optimizer.zero_grad(set_to_none=True)
            ((net(X) - X) ** 2).mean().backward()
            optimizer.step()
        assert not torch.equal(initial, net.encoder[0].weight)  # it did train
        return [p.detach().clone() for p in net.parameters()], optimizer.state_dict()

    (eager_weights, eager_state), (torch_weights, torch_state) = train(EagerAdam, foreach=foreach), train(torch.optim.Adam)
    assert all(torch.equal(a, b) for a, b in zip(eager_weights, torch_weights))
    assert eager_state["param_groups"] == [{**group, "foreach": foreach} for group in torch_state["param_groups"]]
    for param_id, state in torch_state["state"].items():
        assert state.keys() == eager_state["state"][param_id].keys()
        assert all(torch.equal(value, eager_state["state"][param_id][key]) for key, value in state.items())
