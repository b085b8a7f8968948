"""Adam's update over all tensors at once (``foreach=True``, what DeepUAD uses) against torch's
default loop over the tensors, on the KDDCUP network, one thread.

    python bench/adam_step.py              # -> bench/results/adam_step.md

Each repetition trains the 118-60-30-10 autoencoder from the same seed for --steps steps of
1,024 rows (MSE, lr 1e-3, one optimiser step each), once with each setting, the order alternating
between repetitions; the table gives the milliseconds per step of each repetition and their
medians, and whether the two runs ended with the same weights, bit for bit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
from common import LoadSampler, git_state, machine_info  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SETTINGS = {"loop (torch's default on CPU)": None, "foreach (DeepUAD)": True}


def train(foreach, X: torch.Tensor, steps: int, batch: int) -> tuple[float, list[torch.Tensor]]:
    """(milliseconds per step, final weights) of ``steps`` Adam steps over consecutive batches of X."""
    from deepuad.estimators.autoencoder import Autoencoder, EagerAdam

    torch.manual_seed(0)
    network = Autoencoder(X.shape[1], (60, 30, 10))
    optimizer = EagerAdam(network.parameters(), lr=1e-3, foreach=foreach)
    batches = len(X) // batch
    start = time.perf_counter()
    for step in range(steps):
        rows = X[(step % batches) * batch : (step % batches + 1) * batch]
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(network(rows), rows).backward()
        optimizer.step()
    return 1000 * (time.perf_counter() - start) / steps, [p.detach().clone() for p in network.parameters()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "adam_step.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X = torch.rand(50 * 1024, 118, generator=torch.Generator().manual_seed(0))
    sampler = LoadSampler()
    sampler.start()
    started = time.time()
    ms = {name: [] for name in SETTINGS}
    same = True
    for rep in range(args.reps):
        order = list(SETTINGS) if rep % 2 == 0 else list(SETTINGS)[::-1]
        weights = {}
        for name in order:
            milliseconds, weights[name] = train(SETTINGS[name], X, args.steps, 1024)
            ms[name].append(milliseconds)
        same &= all(torch.equal(a, b) for a, b in zip(*weights.values(), strict=True))
    sampler.stop()
    load, state, machine = sampler.window(started, time.time()), git_state(), machine_info("torch")
    loop, foreach = (statistics.median(ms[name]) for name in SETTINGS)
    lines = [
        "# Adam: one op over all tensors (foreach) vs one op per tensor",
        "",
        f"Regenerate: `python bench/adam_step.py --steps {args.steps} --reps {args.reps}`. Code: {state['commit']}. "
        f"{machine['nproc']} cores, one thread, torch {machine['torch']}; 1-minute load over the run: mean {load['mean']} "
        f"(min {load['min']}, max {load['max']}). The 118-60-30-10 autoencoder, batches of 1,024 rows, "
        f"{args.steps} steps per run, the two settings alternating.",
        "",
        "| setting | ms per step, each repetition | median |",
        "|---|---|---:|",
        *(f"| {name} | {' / '.join(f'{v:.2f}' for v in ms[name])} | {statistics.median(ms[name]):.2f} |" for name in SETTINGS),
        "",
        f"foreach takes {foreach / loop:.2f}x the time per step of the loop; the final weights are "
        f"{'the same, bit for bit,' if same else 'NOT the same'} in every repetition.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
