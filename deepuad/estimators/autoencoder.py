"""The fully connected autoencoder, its optimiser, the cosine reconstruction error h(x), and what
DeepUAD does with them beside Algorithm 1: the training steps (``Steps``: loss, precision, compile),
the reconstruction errors of many rows, and the network's state as NumPy arrays (``network_state``).

Architecture (paper, Table 8): encoder widths e.g. [60, 30, 10], decoder the mirror.
Hidden layers use the activation (tanh for tabular data, ReLU otherwise); the bottleneck
and the output layer are linear, so the code and the reconstruction are not squashed into
the activation's range (the input may be standard-scaled, i.e. outside [-1, 1]).
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from torch import nn

from deepuad.estimators import params

ACTIVATIONS = dict(zip(params.ACTIVATIONS, (nn.Tanh, nn.ReLU), strict=True))


def _mlp(widths: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2:  # no activation after the last layer
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    def __init__(self, n_features: int, layers: tuple[int, ...] = (60, 30, 10), activation: str = params.DEFAULTS["activation"]):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if n_features < 1 or not layers or min(layers) < 1:
            raise ValueError(f"invalid architecture: {n_features} inputs, layers {list(layers)}")
        widths = [n_features, *layers]
        self.encoder = _mlp(widths, activation)
        self.decoder = _mlp(widths[::-1], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class EagerAdam(torch.optim.Adam):
    """``torch.optim.Adam``, same update and same ``state_dict``, minus the import of torch._dynamo.

    torch wraps ``step``, ``zero_grad``, ``add_param_group``, ``state_dict`` and
    ``load_state_dict`` so that torch.compile does not trace them, and each wrapper imports
    torch._dynamo on first use, which takes longer than a whole fit on a small table. Nothing here
    is traced (``--compile`` compiles the network, not the optimiser), so the plain functions
    are called. ``inspect.unwrap`` finds them whatever wrappers a torch release stacks; if one
    ever stops exposing ``__wrapped__``, this is Adam with the import again, not another update.
    """

    # unwrapped once, here: step and zero_grad run at every batch
    _plain_step = staticmethod(inspect.unwrap(torch.optim.Adam.step))
    _plain_zero_grad = staticmethod(inspect.unwrap(torch.optim.Optimizer.zero_grad))
    _plain_add_param_group = staticmethod(inspect.unwrap(torch.optim.Optimizer.add_param_group))
    _plain_state_dict = staticmethod(inspect.unwrap(torch.optim.Optimizer.state_dict))
    _plain_load_state_dict = staticmethod(inspect.unwrap(torch.optim.Optimizer.load_state_dict))

    def step(self, closure=None):
        with torch.no_grad():  # what the step wrapper does (differentiable=False)
            return self._plain_step(self, closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._plain_zero_grad(self, set_to_none)

    def add_param_group(self, param_group: dict) -> None:
        self._plain_add_param_group(self, param_group)

    def state_dict(self) -> dict:
        return self._plain_state_dict(self)

    def load_state_dict(self, state_dict: dict) -> None:
        self._plain_load_state_dict(self, state_dict)


def cosine_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """h(x) = 1 - cos(x, x_hat) per row, in [0, 2]; an all-zero row scores 1 (no direction)."""
    return 1.0 - nn.functional.cosine_similarity(x, x_hat, dim=1, eps=1e-8)


@torch.no_grad()
def reconstruction_errors(model: Autoencoder, X: torch.Tensor | np.ndarray, batch_size: int = 65536, device="cpu",
                          start: int = 0, stop: int | None = None):
    """Bottleneck codes, cosine errors and squared L2 errors ||x - x_hat||^2 of rows [start, stop)
    (default: all), in large batches without gradients.

    ``X`` may live on the CPU (or be a NumPy/HDF5 array) while the model is on ``device``:
    each batch is moved over, so scoring data larger than device memory works.
    """
    model.eval()
    codes, cosines, squares = [torch.zeros((0, model.encoder[-1].out_features))], [torch.zeros(0)], [torch.zeros(0)]
    stop = len(X) if stop is None else stop
    for first in range(start, stop, batch_size):
        batch = X[first : min(first + batch_size, stop)]
        if not isinstance(batch, torch.Tensor):
            batch = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        batch = batch.to(device, non_blocking=True)
        code = model.encoder(batch)
        reconstruction = model.decoder(code)
        cosines.append(cosine_error(batch, reconstruction).float().cpu())
        squares.append((batch - reconstruction).float().square().sum(dim=1).cpu())
        codes.append(code.float().cpu())
    model.train()
    return torch.cat(codes).numpy(), torch.cat(cosines).numpy(), torch.cat(squares).numpy()


def encode_and_score(model: Autoencoder, X: torch.Tensor | np.ndarray, batch_size: int = 65536, device="cpu",
                     start: int = 0, stop: int | None = None):
    """Bottleneck codes and cosine errors h(x) of rows [start, stop) (what re-selection clusters)."""
    codes, cosines, _ = reconstruction_errors(model, X, batch_size, device, start, stop)
    return codes, cosines


_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


class Steps:
    """One optimiser step per batch of rows (DeepUAD's training): the loss (``"mse"`` or ``"cosine"``),
    autocast at ``precision`` ("32", "bf16" or "16"), fp16 loss scaling against underflow (bf16 has
    float32's range and needs none), and ``compile``: the network (or its DistributedDataParallel
    wrapper) through torch.compile. Built by every fit; not picklable."""

    def __init__(self, network: nn.Module, optimizer: torch.optim.Optimizer, loss: str, device, precision: str, compile: bool):
        device_type = torch.device(device).type
        self.optimizer, self.loss, self.device = optimizer, loss, device
        self.autocast = lambda: torch.autocast(device_type, dtype=_AUTOCAST_DTYPES.get(precision, torch.float32),
                                               enabled=precision != "32")
        self.scaler = torch.amp.GradScaler(device_type, enabled=precision == "16")
        self.forward = torch.compile(network) if compile else network

    def run(self, X: torch.Tensor, order: torch.Tensor, batch_size: int) -> torch.Tensor:
        """One step per batch of rows ``X[order]``; returns the summed loss x batch size (on the device)."""
        total = torch.zeros((), device=self.device)
        for start in range(0, len(order), batch_size):
            # index_select copies the same rows as X[...], several times faster on the CPU
            batch = X.index_select(0, order[start : start + batch_size])
            if batch.device != torch.device(self.device):  # data kept in (pinned) host memory
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            with self.autocast():
                reconstruction = self.forward(batch).float()
            if self.loss == "mse":
                loss = nn.functional.mse_loss(reconstruction, batch)
            else:
                loss = cosine_error(batch, reconstruction).mean()
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total += loss.detach() * len(batch)
        return total


def place(X: torch.Tensor, device) -> torch.Tensor:
    """Training rows where the steps read them: on a GPU, the whole matrix on the device when it fits
    in half its free memory (no per-batch copies), else pinned in host memory, each batch copied
    asynchronously; on the CPU, as they are."""
    if not str(device).startswith("cuda"):
        return X
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return X.to(device) if X.nbytes < free // 2 else X.pin_memory()


def reconstruct(model: Autoencoder, X: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """decoder(encoder(x)) of every row of X (float32), in batches without gradients; the model's
    training mode is left as it was."""
    parameter = next(model.parameters())
    out = np.empty_like(X)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                batch = torch.from_numpy(X[start : start + batch_size]).to(parameter.device, parameter.dtype)
                out[start : start + len(batch)] = model(batch).float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def network_state(model: Autoencoder, optimizer: torch.optim.Optimizer | None) -> tuple[dict[str, np.ndarray], list]:
    """(arrays, the optimiser's param_groups): the weights (``weights/<name>``) and the optimiser's
    state (``optimizer/<parameter>/<name>``: Adam's moments and step) as plain NumPy arrays; an
    optimiser of None (a model loaded to score) has neither state nor groups."""
    arrays = {f"weights/{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    state = optimizer.state_dict() if optimizer is not None else {"state": {}, "param_groups": []}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            arrays[f"optimizer/{param_id}/{key}"] = torch.as_tensor(value).detach().cpu().numpy()
    return arrays, state["param_groups"]


def load_network_state(model: Autoencoder, optimizer: torch.optim.Optimizer | None, arrays: dict[str, np.ndarray],
                       param_groups: list) -> None:
    """``network_state``'s arrays back into ``model`` and ``optimizer`` (None: the weights only).
    A weight whose shape is not the model's raises RuntimeError (torch's load_state_dict)."""
    model.load_state_dict({k[len("weights/") :]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                           if k.startswith("weights/")})
    if optimizer is None:
        return
    state: dict = {}
    for key, value in arrays.items():
        if key.startswith("optimizer/"):
            _, param_id, name = key.split("/")
            state.setdefault(int(param_id), {})[name] = torch.from_numpy(np.array(value))
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
