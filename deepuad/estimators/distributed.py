"""Data-parallel training under torchrun: which process am I, and the few collectives Algorithm 1 needs.

``torchrun --nproc-per-node N -m deepuad train ...`` starts N copies of the command with RANK,
WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT in their environment. ``World.from_environment``
reads them and joins the process group (NCCL between GPUs, gloo on CPU); without torchrun it
returns a one-process World and nothing distributed happens.

What is data-parallel and what is central (docs/scaling.md):
* training: each rank holds one contiguous block of the selected rows; DistributedDataParallel
  averages gradients after every step, so all ranks keep identical weights and Adam moments;
* re-selection: each rank encodes its own range of ALL rows; the errors (and, for the paper's GMM
  re-selection, the codes z) are gathered on rank 0, which chooses the new training set and
  broadcasts it. Gathering costs 4 bytes a row for errors, 4 x (code width + 1) for z;
* only rank 0 writes artifacts.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from deepuad.estimators.params import torchrun_environment


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    device: str = "cpu"  # this process's device ("cuda:<local rank>" on GPU boxes)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: str) -> "World":
        """The torchrun process group this process belongs to (joined here), or a one-process World.

        ``device`` is the resolved --device ("cpu" or "cuda[:N]"); under torchrun each rank takes
        the GPU of its local rank."""
        environment = torchrun_environment()  # RequestError naming a variable that is not a valid rank or size
        size = environment["WORLD_SIZE"]
        if size <= 1:
            return cls(device=device)
        rank, local_rank = environment["RANK"], environment["LOCAL_RANK"]
        local_size = environment["LOCAL_WORLD_SIZE"]
        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            # a long GMM re-selection on rank 0 keeps the others waiting in a collective: allow an hour
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=datetime.timedelta(hours=1))
        return cls(rank, size, local_rank, local_size, device)

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    # ----------------------------------------------------------------- partitioning
    def block(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """[start, stop) of this rank's (or ``rank``'s) share of n items: contiguous, sizes differ by at most one."""
        rank = self.rank if rank is None else rank
        return n * rank // self.size, n * (rank + 1) // self.size

    # ----------------------------------------------------------------- collectives
    @property
    def _comm_device(self) -> str:
        return self.device if self.device.startswith("cuda") else "cpu"  # NCCL only moves GPU tensors

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor)
        return tensor.cpu().tolist()

    def gather_rows(self, local: np.ndarray, n_total: int) -> np.ndarray | None:
        """Concatenate every rank's block (rank order) on rank 0; None elsewhere.

        ``local`` holds this rank's ``block(n_total)`` rows (any trailing shape, float32)."""
        if not self.distributed:
            return local
        largest = max(stop - start for start, stop in (self.block(n_total, r) for r in range(self.size)))
        padded = torch.zeros((largest, *local.shape[1:]), dtype=torch.float32, device=self._comm_device)
        padded[: len(local)] = torch.from_numpy(np.ascontiguousarray(local, dtype=np.float32))
        buffers = [torch.empty_like(padded) for _ in range(self.size)] if self.is_root else None
        dist.gather(padded, buffers, dst=0)
        if not self.is_root:
            return None
        parts = []
        for r, buffer in enumerate(buffers):
            start, stop = self.block(n_total, r)
            parts.append(buffer[: stop - start].cpu().numpy())
        return np.concatenate(parts)

    def broadcast(self, array: np.ndarray | None, dtype) -> np.ndarray:
        """Rank 0's 1-D ``array`` on every rank (others pass None)."""
        if not self.distributed:
            return np.asarray(array, dtype=dtype)
        torch_dtype = torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
        length = torch.tensor([len(array) if self.is_root else 0], dtype=torch.int64, device=self._comm_device)
        dist.broadcast(length, src=0)
        if self.is_root:
            values = torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(self._comm_device)
        else:
            values = torch.empty(int(length.item()), dtype=torch_dtype, device=self._comm_device)
        dist.broadcast(values, src=0)
        return values.cpu().numpy()
