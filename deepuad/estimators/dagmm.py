"""DAGMM, the Deep Autoencoding Gaussian Mixture Model (Zong et al., ICLR 2018), written in torch:
one of the baselines the paper compares against (``deepuad baseline --method dagmm``)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from deepuad.estimators.autoencoder import EagerAdam

from deepuad.estimators.base import (
    CONTAMINATION, POSITIVE_INT, POSITIVE_NUMBER, RANDOM_STATE, BaseDetector, _check_width, _torch_device, check_array,
)
from deepuad.estimators.constraints import Integral, Interval, Real, Satisfies, Widths
from deepuad.estimators.params import BASELINE_DEFAULTS, BASELINE_LR


# Added to the diagonal of every mixture covariance so that it stays positive definite
# (Zong et al. 2018 guard against singular covariances with the penalty P(Sigma) and a small
# diagonal term; 1e-6 * I is the usual choice in public implementations).
_COV_EPS = 1e-6
# Floor for norms and mixture weights so that no division by zero / log(0) can happen.
_NORM_EPS = 1e-8
_WEIGHT_EPS = 1e-12
_LOG_2PI = math.log(2.0 * math.pi)


class _DAGMMNet(nn.Module):
    """Compression network (autoencoder) + estimation network of DAGMM."""

    def __init__(self, n_features: int, hidden, n_gmm: int, est_hidden: int, dropout: float):
        super().__init__()
        enc, dec = [], []
        sizes = [n_features, *hidden]
        for i in range(len(hidden)):
            enc.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(hidden) - 1:
                enc.append(nn.Tanh())
        rev = sizes[::-1]
        for i in range(len(hidden)):
            dec.append(nn.Linear(rev[i], rev[i + 1]))
            if i < len(hidden) - 1:
                dec.append(nn.Tanh())
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        # Latent z = [z_c, relative Euclidean distance, cosine similarity].
        self.estimation = nn.Sequential(
            nn.Linear(hidden[-1] + 2, est_hidden),
            nn.Tanh(),
            nn.Dropout(p=dropout),
            nn.Linear(est_hidden, n_gmm),
        )

    def forward(self, x: torch.Tensor):
        z_c = self.encoder(x)
        x_hat = self.decoder(z_c)
        # Norms are floored at _NORM_EPS so all-zero rows give finite features.
        x_norm = x.norm(dim=1).clamp_min(_NORM_EPS)
        rel_euc = (x - x_hat).norm(dim=1) / x_norm
        # Cosine similarity written out (F.cosine_similarity is several times slower on CPU).
        cos = (x * x_hat).sum(dim=1) / (x_norm * x_hat.norm(dim=1).clamp_min(_NORM_EPS))
        z = torch.cat([z_c, rel_euc.unsqueeze(1), cos.unsqueeze(1)], dim=1)
        # Softmax in float64 (after the float32 network) so that memberships do not underflow
        # to exactly 0 and the GMM statistics below are accumulated in double precision.
        gamma = torch.softmax(self.estimation(z).double(), dim=1)
        return x_hat, z.double(), gamma


def _gmm_params(z: torch.Tensor, gamma: torch.Tensor):
    """Mixture weights, means, covariances from soft memberships (Zong et al. eq. 5)."""
    n_k = gamma.sum(dim=0)                                          # (K,)
    phi = n_k / gamma.shape[0]                                      # (K,)
    denom = n_k.clamp_min(_WEIGHT_EPS)
    mu = gamma.t() @ z / denom.unsqueeze(1)                         # (K, d)
    diff = z.unsqueeze(0) - mu.unsqueeze(1)                         # (K, N, d)
    cov = torch.einsum("kn,kni,knj->kij", gamma.t(), diff, diff) / denom.view(-1, 1, 1)
    return phi, mu, cov


def _cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of ``cov + eps*I``; the jitter grows tenfold if that is not enough."""
    d = cov.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    jitter = _COV_EPS
    for _ in range(8):
        L, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        if not bool((info != 0).any()):
            return L
        jitter *= 10.0
    # Last resort: keep only the (clamped) diagonal, which is always positive definite.
    diag = torch.diagonal(cov, dim1=-2, dim2=-1).clamp_min(0.0) + jitter
    return torch.diag_embed(diag.sqrt())


def _energy(z: torch.Tensor, phi: torch.Tensor, mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Sample energy E(z) = -log sum_k phi_k N(z | mu_k, Sigma_k)  (Zong et al. eq. 6).

    Numerically stable form: with Sigma_k = L_k L_k^T (Cholesky),
    the Mahalanobis term is ||L_k^{-1}(z - mu_k)||^2 from a triangular solve (no explicit
    inverse), log|2 pi Sigma_k| = d log 2pi + 2 sum log diag(L_k) (no determinant, which under-
    or overflows for small/large covariances), and the sum over components is a log-sum-exp
    (no exp of large negative numbers).
    """
    d = z.shape[1]
    diff = z.unsqueeze(0) - mu.unsqueeze(1)                         # (K, N, d)
    sol = torch.linalg.solve_triangular(L, diff.transpose(1, 2), upper=False)  # (K, d, N)
    maha = (sol ** 2).sum(dim=1)                                    # (K, N)
    log_det = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(dim=1)  # (K,)
    log_prob = (torch.log(phi.clamp_min(_WEIGHT_EPS)).unsqueeze(1)
                - 0.5 * (maha + log_det.unsqueeze(1) + d * _LOG_2PI))  # (K, N)
    return -torch.logsumexp(log_prob, dim=0)                        # (N,)


class DAGMMDetector(BaseDetector):
    """Deep Autoencoding Gaussian Mixture Model (Zong et al., ICLR 2018); score = sample energy.

    Compression network: autoencoder ``n_features - hidden... - hidden[-1]`` (tanh between
    layers, linear code and output) mirrored for the decoder; for KDDCUP the paper uses
    120-60-30-10-1, i.e. ``hidden=(60, 30, 10, 1)``.  The latent is the code plus the relative
    Euclidean distance ||x - x'|| / ||x|| and the cosine similarity of x and its
    reconstruction x' (3 dims for a 1-d code).  Estimation network: ``est_hidden`` tanh units,
    dropout, softmax over ``n_gmm`` components.  The GMM parameters of each batch come from the
    batch's soft memberships, and the loss is

        mean_rows ||x - x'||^2  (reconstruction error, the paper's L(x, x') = ||x - x'||_2^2,
                                 i.e. the squared error summed over features, not divided
                                 by the width, which would leave the AE undertrained on small
                                 data relative to the energy/covariance terms)
        + lambda_energy * mean_rows E(z) + lambda_cov * sum_k sum_j 1 / Sigma_k[j, j].

    After training, the mixture parameters are recomputed from the whole training set (in
    batches, network in eval mode) and ``decision_function`` returns the sample energy E(z).

    Parameters
    ----------
    hidden : encoder layer widths after the input; the last is the code size.
    n_gmm : number of mixture components.
    est_hidden : width of the estimation network's hidden layer.
    dropout : dropout probability in the estimation network, in [0, 1).
    epochs : passes over the training data (the paper uses 200 for KDDCUP).
    batch_size : rows per batch (each epoch is split into ceil(N / batch_size) equal batches,
        so no tiny last batch produces a degenerate covariance).
    lr : Adam learning rate.
    lambda_energy, lambda_cov : loss weights lambda1, lambda2 of the paper.
    device : torch device string ("cpu", "cuda", "cuda:0", ...).
    random_state : seed of the weight init, dropout and shuffling (None = unseeded).
    contamination : share of training rows labelled anomalous by ``fit``.

    Fitted attributes: ``model_``, ``phi_``, ``mu_``, ``cov_`` (numpy, float64),
    ``loss_history_`` (mean training loss per epoch), ``n_features_in_``.
    """

    _parameter_checks = {
        "hidden": (Widths(Interval(Integral, 1)),),
        "n_gmm": POSITIVE_INT,
        "est_hidden": POSITIVE_INT,
        "dropout": (Interval(Real, 0, 1, closed="left"),),
        "epochs": POSITIVE_INT,
        "batch_size": POSITIVE_INT,
        "lr": POSITIVE_NUMBER,
        "lambda_energy": (Interval(Real, 0),),
        "lambda_cov": (Interval(Real, 0),),
        "device": (Satisfies(_torch_device, "a torch device string such as 'cpu' or 'cuda'"),),
        "random_state": RANDOM_STATE,
        "contamination": CONTAMINATION,
    }

    def __init__(self, hidden=(60, 30, 10, 1), n_gmm=4, est_hidden=10, dropout=0.5, epochs=200,
                 batch_size=BASELINE_DEFAULTS["batch_size"], lr=BASELINE_LR["dagmm"], lambda_energy=0.1, lambda_cov=0.005, device="cpu",
                 random_state=0, contamination=BASELINE_DEFAULTS["contamination"]):
        self._store_params(locals())

    def _seed(self) -> int:
        if self.random_state is None:  # fresh OS entropy; the global RNGs are not consumed
            return int(np.random.SeedSequence().generate_state(1)[0])
        return int(self.random_state)

    # ----------------------------------------------------------------- training
    def _fit(self, X: np.ndarray) -> None:
        device = torch.device(self.device)
        seed = self._seed()
        n, n_features = X.shape
        X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        # Seed init + dropout inside a forked RNG so the caller's global RNG state is untouched;
        # shuffling uses its own generator.
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            model = _DAGMMNet(n_features, tuple(int(h) for h in self.hidden), int(self.n_gmm),
                              int(self.est_hidden), float(self.dropout)).to(device)
            optimizer = EagerAdam(model.parameters(), lr=float(self.lr))
            shuffle_gen = torch.Generator().manual_seed(seed)
            n_batches = max(1, math.ceil(n / int(self.batch_size)))
            history = []
            model.train()
            for _ in range(int(self.epochs)):
                perm = torch.randperm(n, generator=shuffle_gen).to(device)
                total = 0.0
                for idx in torch.tensor_split(perm, n_batches):
                    xb = X_t[idx]
                    x_hat, z, gamma = model(xb)
                    loss = self._loss(xb, x_hat, z, gamma)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * idx.shape[0]
                history.append(total / n)
        self.model_ = model.eval()
        self.n_features_in_ = n_features
        self.loss_history_ = history
        self._fit_mixture(X_t)

    def _loss(self, x, x_hat, z, gamma) -> torch.Tensor:
        # Zong et al. eq. (7); the GMM part runs in float64 (z and gamma are double).
        recon = ((x - x_hat) ** 2).sum(dim=1).mean()
        phi, mu, cov = _gmm_params(z, gamma)
        energy = _energy(z, phi, mu, _cholesky(cov)).mean()
        cov_penalty = (1.0 / (torch.diagonal(cov, dim1=-2, dim2=-1) + _COV_EPS)).sum()
        return recon + float(self.lambda_energy) * energy + float(self.lambda_cov) * cov_penalty

    def _eval_batch(self) -> int:
        return max(int(self.batch_size), 8192)

    @torch.no_grad()
    def _latent(self, X_t: torch.Tensor):
        for start in range(0, X_t.shape[0], self._eval_batch()):
            _, z, gamma = self.model_(X_t[start:start + self._eval_batch()])
            yield z, gamma

    @torch.no_grad()
    def _fit_mixture(self, X_t: torch.Tensor) -> None:
        """GMM parameters from the whole training set, in two batched passes (float64)."""
        n = X_t.shape[0]
        n_k = None
        sum_z = None
        for z, gamma in self._latent(X_t):
            nk_b, sz_b = gamma.sum(dim=0), gamma.t() @ z
            n_k = nk_b if n_k is None else n_k + nk_b
            sum_z = sz_b if sum_z is None else sum_z + sz_b
        denom = n_k.clamp_min(_WEIGHT_EPS)
        phi = n_k / n
        mu = sum_z / denom.unsqueeze(1)
        scatter = None
        for z, gamma in self._latent(X_t):  # second pass: centred scatter (no E[zz^T]-mu mu^T cancellation)
            diff = z.unsqueeze(0) - mu.unsqueeze(1)
            s_b = torch.einsum("kn,kni,knj->kij", gamma.t(), diff, diff)
            scatter = s_b if scatter is None else scatter + s_b
        cov = scatter / denom.view(-1, 1, 1)
        self._phi_t, self._mu_t, self._chol_t = phi, mu, _cholesky(cov)
        self.phi_ = phi.cpu().numpy()
        self.mu_ = mu.cpu().numpy()
        self.cov_ = cov.cpu().numpy()

    # ----------------------------------------------------------------- scoring
    @torch.no_grad()
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = check_array(X)
        _check_width(self, X)
        device = self._phi_t.device
        X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
        self.model_.eval()
        out = [_energy(z, self._phi_t, self._mu_t, self._chol_t) for z, _ in self._latent(X_t)]
        return torch.cat(out).cpu().numpy().astype(np.float64)


