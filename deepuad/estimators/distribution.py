"""Distribution clustering (W.-Y. Lin, S. Liu, J.-H. Lai, Y. Matsushita, "Dimensionality's
Blessing: Clustering Images by Underlying Distribution", CVPR 2018) for deepuad's initial selection.

Greedy seed-and-grow clustering on squared Euclidean distances between (by default
L2-normalised) rows. Seeds are the closest still-unclustered pairs whose *distance profiles*
(their distances to every other point) agree to within ``thres``; a cluster then absorbs every
unclustered point that (a) has a distance profile close to the cluster's mean profile and
(b) lies on the cluster's hyper-shell (its mean distance to the members equals the members'
mean distance to each other, to within ``thres``). Clusters of at most ``min_clus`` points are
dropped; seeding stops once the closest remaining pair is at ``max_dist`` or more. Points never
absorbed are unclustered (label -1). The semantics follow the authors' released MATLAB code
("the release" below); each of its rules is described here or where it is implemented.

:class:`DistributionClustering` is a scalable version: distance profiles over ``n_anchors``
random anchor rows, seed pairs from an exact kNN graph rebuilt on the still-unclustered rows,
and the shell test in closed form against the running centroid. Nothing n x n is ever built;
work is done in blocks of ``chunk_size`` rows. The dense O(n^2)-memory version, step for step
the release's, is the tests' oracle (tests/distribution_oracle.py).

Readings of the paper's and the release's ambiguities chosen here, and why:

* **Distance** is *squared* Euclidean (the release uses ``vl_alldist2``), so ``thres`` and
  ``max_dist`` keep the paper's scale (max_dist <= 2 for unit vectors with cosines >= 0).
* **Normalisation** defaults to ``"l2"`` (the public front end; NetVLAD inputs were unit
  vectors). ``"center-l2"`` is the authors' later "shell normalisation" (subtract the training
  mean, then unit-normalise); ``"none"`` uses the rows as given. All-zero rows stay zero.
* **min_clus is strict**, as in the release: a cluster is kept only with *more than*
  ``min_clus`` points.
* **Stopping** is on the seed distance only: no new cluster is seeded once the closest pair of
  unclustered points is ``max_dist`` or more apart, however the clusters grew (the release
  also stops when a grown cluster's mean distance exceeds ``max_dist``: a quirk, not kept).
* **Exact duplicate seed pairs** (distance 0) are skipped, as in the release; duplicates can
  still join clusters by growth. Seed distances are recomputed exactly in float64 so that a
  duplicate gives exactly 0.
* **Profile means divide by n** (the release), and the anchor version averages the *same*
  per-column terms over a uniform anchor sample: an unbiased estimate that becomes the exact
  release value when ``n_anchors >= n`` (then every row is an anchor). Self-entries follow the
  release's intent (a member "sees itself" at the cluster scale mu), not the logical-mask slip
  in the mirrored copy.
* **Growth in the scalable version is batched**: each sweep tests all candidates against the
  centroid and s^2 at the start of the sweep, while the release updates the shell statistic
  after every single addition. Per-point updates would cost O(n d) per added point; the two
  agree on the synthetic data of tests/test_estimators_distribution.py (nested hyper-shells, a
  DeepUAD-like mixture). The mean profile is fixed for a whole growth phase, exactly as in the
  release.
* **Seed pairs are never retried**: a pair that was examined (rejected, or grown into a cluster
  that was too small) is remembered across kNN rebuilds, as in the release's single sweep.
  Rows closer than float32 rounding (duplicates) are kept out of the kNN lists, so a group of
  more than ``n_neighbors`` copies cannot hide the real seed pairs.
* **Speed without approximation** beyond the anchor profiles: the kNN graph is exact (brute
  force in ``chunk_size`` blocks; only rows that lost a neighbour are recomputed on a rebuild),
  and growth evaluates the shell test only on rows that the triangle inequality, applied to
  distances from a reference centre (the seed pair's midpoint, computed for a batch of seeds
  in one matrix product), cannot exclude. torch is used only for its faster ``topk``.
* **Cluster variance.** ``cluster_s2_`` is s^2, the mean squared distance of the members to
  their centroid (the cluster variance deepuad ranks clusters by, as for the other methods);
  ``cluster_mu_`` is the members' mean pairwise squared distance, mu = 2 s^2 |C| / (|C| - 1).
  Both are computed on the *final* members; the release records mu from before its second
  growth phase, which differs negligibly.
* **Out-of-sample assignment** (``predict``, and the rows left out by ``sample=``): a row joins
  the cluster whose shell test and anchor-profile test it passes with the smallest shell
  deviation, otherwise it is unclustered.
* **Determinism**: the same data, parameters and ``random_state`` give the same labels on the
  same machine and thread settings (BLAS rounding can differ between thread counts).

Longer than 400 lines on purpose: one method, whose run, estimator and thres heuristic share
the validation and distance helpers above them.
"""

from __future__ import annotations

import numbers

import numpy as np

from .base import check_array
from .params import CLUSTERING_DEFAULTS as _DEFAULTS

__all__ = ["DistributionClustering", "estimate_thres"]

_NORMALIZE = ("l2", "center-l2", "none")
# estimate_thres works from float32 distances only; below this two rows count as duplicates.
_DUPLICATE_TOL = 1e-6


# --------------------------------------------------------------------------- validation


def _check_real(name, value, *, low=None, low_open=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        bound = f"greater than {low}" if low_open else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def _check_int(name, value, *, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value!r}")
    return int(value)


def _check_core(thres, min_clus, max_dist, normalize):
    thres = _check_real("thres", thres, low=0.0)
    min_clus = _check_int("min_clus", min_clus, low=0)
    max_dist = _check_real("max_dist", max_dist, low=0.0)
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {', '.join(_NORMALIZE)}, got {normalize!r}")
    return thres, min_clus, max_dist


def _check_rows(X, min_rows=2):
    X = check_array(X)
    if X.shape[0] < min_rows:
        raise ValueError(f"distribution clustering needs at least {min_rows} rows, got {X.shape[0]}")
    return X


def _check_random_state(random_state):
    if random_state is None:
        return None
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) or random_state < 0:
        raise ValueError(f"random_state must be None or a non-negative integer, got {random_state!r}")
    return int(random_state)


# --------------------------------------------------------------------------- helpers


def _normalize(X, normalize, center=None):
    """Rows as the algorithm sees them; returns (rows, center) where center is only for center-l2."""
    if normalize == "none":
        return X, None
    if normalize == "center-l2":
        if center is None:
            center = X.mean(axis=0, dtype=np.float64).astype(X.dtype)
        X = X - center
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64)).astype(X.dtype)
    # All-zero rows have no direction; leaving them at the origin keeps them finite.
    norms[norms == 0] = 1
    return X / norms[:, None], center


def _sq_norms(X):
    return np.einsum("ij,ij->i", X, X, dtype=np.float64)


def _sqdist_block(A, sqa, B, sqb):
    """Squared distances between the rows of A and B (float32), clipped at 0."""
    G = A @ B.T
    G *= -2
    G += sqa[:, None]
    G += sqb[None, :]
    np.maximum(G, 0, out=G)
    return G


def _exact_pair_sqdist(X, i, j, chunk):
    """Exact float64 ||X[i] - X[j]||^2 for index vectors i, j (chunked over pairs)."""
    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), chunk):
        diff = X[i[s : s + chunk]].astype(np.float64) - X[j[s : s + chunk]]
        out[s : s + chunk] = np.einsum("ij,ij->i", diff, diff)
    return out


# --------------------------------------------------------------------------- scalable version


class _Cluster:
    """Running sums of a growing cluster: enough for centroid, s^2 and the anchor profile."""

    def __init__(self, d, m):
        self.cnt = 0
        self.sum_x = np.zeros(d, dtype=np.float64)
        self.sum_sq = 0.0
        self.sum_p = np.zeros(m, dtype=np.float64)
        self.self_cols = np.zeros(m, dtype=np.float64)  # how many members are each anchor

    def stats(self):
        xbar = self.sum_x / self.cnt
        s2 = max(self.sum_sq / self.cnt - float(xbar @ xbar), 0.0)
        return xbar, s2

    def profile(self, mu):
        # Members that are anchors see themselves at mu instead of at distance 0.
        return ((self.sum_p + mu * self.self_cols) / self.cnt).astype(np.float32)


class _ScalableRun:
    """State of one scalable fit on the rows being clustered."""

    def __init__(self, Xs, anchor_idx, thres, min_clus, max_dist, n_neighbors, chunk):
        self.X = Xs                                 # normalised, shifted rows (float32)
        self.sq64 = _sq_norms(Xs)
        self.sq32 = self.sq64.astype(np.float32)
        self.n, self.d = Xs.shape
        self.tau, self.min_clus, self.max_dist = thres, min_clus, max_dist
        self.k = n_neighbors
        self.chunk = chunk
        self.anchor_idx = anchor_idx
        self.m = len(anchor_idx)
        self.anchor_pos = np.full(self.n, -1, dtype=np.int64)
        self.anchor_pos[anchor_idx] = np.arange(self.m)
        self.P = self._anchor_profiles()
        self.labels = np.full(self.n, -1, dtype=np.int64)
        self.free = np.ones(self.n, dtype=bool)
        # Working copy of the free rows. Rows that join a cluster are only marked dead
        # (`alive`); the copy is compacted once a quarter of it is dead, so accepting a
        # cluster does not cost a copy of the whole matrix.
        self.free_idx = np.arange(self.n)           # row index of each working row
        self.alive = np.ones(self.n, dtype=bool)
        self.Xf = Xs
        self.sqf = self.sq32
        self.clusters = []                          # dicts describing accepted clusters
        self.n_knn_builds = 0
        self.n_seeds_grown = 0

    # -- precomputation ------------------------------------------------------------------

    def _anchor_profiles(self):
        A = self.X[self.anchor_idx]
        sqa = self.sq32[self.anchor_idx]
        P = np.empty((self.n, self.m), dtype=np.float32)
        for s in range(0, self.n, self.chunk):
            P[s : s + self.chunk] = _sqdist_block(self.X[s : s + self.chunk], self.sq32[s : s + self.chunk], A, sqa)
        P[self.anchor_idx, np.arange(self.m)] = 0.0
        return P

    # -- kNN graph on the free rows ------------------------------------------------------

    def _knn(self, queries, refs, kk):
        """Exact kk nearest refs (excluding the query itself) of each query row; refs sorted."""
        import torch  # topk is faster than np.argpartition for this selection

        nq = len(queries)
        best_d = np.full((nq, kk), np.inf, dtype=np.float32)
        best_i = np.full((nq, kk), -1, dtype=np.int64)
        qpos = np.searchsorted(refs, queries)       # where each query sits among the refs
        cs = self.chunk
        for qs in range(0, nq, cs):
            q = queries[qs : qs + cs]
            Xq, sqq = self.X[q], self.sq32[q]
            run_d = torch.from_numpy(best_d[qs : qs + cs])
            run_i = torch.from_numpy(best_i[qs : qs + cs])
            for rs in range(0, len(refs), cs):
                r = refs[rs : rs + cs]
                G = _sqdist_block(Xq, sqq, self.X[r], self.sq32[r])
                rows = np.flatnonzero((qpos[qs : qs + cs] >= rs) & (qpos[qs : qs + cs] < rs + len(r)))
                rows = rows[r[qpos[qs : qs + cs][rows] - rs] == q[rows]]
                G[rows, qpos[qs : qs + cs][rows] - rs] = np.inf
                # Duplicates are no use as neighbours: zero-distance seeds are skipped, and a
                # group of more than k copies would otherwise hide every real seed pair.
                G[G <= self.eps_sq] = np.inf
                kb = min(kk, len(r))
                vals, idx = torch.topk(torch.from_numpy(G), kb, dim=1, largest=False)
                cand_d = torch.cat([run_d, vals], dim=1)
                cand_i = torch.cat([run_i, torch.from_numpy(r)[idx]], dim=1)
                run_d, sel = torch.topk(cand_d, kk, dim=1, largest=False)
                run_i = torch.gather(cand_i, 1, sel)
            best_d[qs : qs + cs] = run_d.numpy()
            best_i[qs : qs + cs] = run_i.numpy()
        best_i[~np.isfinite(best_d)] = -1
        return best_d, best_i

    def _compact(self):
        keep = self.alive
        self.free_idx = self.free_idx[keep]
        self.Xf = self.Xf[keep]
        self.sqf = self.sqf[keep]
        self.alive = np.ones(len(self.free_idx), dtype=bool)
        self.pos_in_free[self.free_idx] = np.arange(len(self.free_idx))
        return keep

    def _update_knn(self):
        """kNN lists of the free rows among the free rows.

        A row whose previous neighbours are all still free keeps exactly the same list (its
        k nearest in a superset are still there), so only rows that lost a neighbour are
        recomputed. The rebuild itself is needed: a distribution whose nearest neighbours
        all sat in an earlier cluster would otherwise never be seeded.
        """
        refs = np.flatnonzero(self.free)
        kk = min(self.k, len(refs) - 1)
        if self.n_knn_builds == 0 or kk < self.k:
            todo = refs
            self.nn_d = np.full((self.n, self.k), np.inf, dtype=np.float32)
            self.nn_i = np.full((self.n, self.k), -1, dtype=np.int64)
        else:
            nb = self.nn_i[refs]
            lost = ((nb >= 0) & ~self.free[np.maximum(nb, 0)]).any(axis=1)
            todo = refs[lost]
        if len(todo):
            dd, ii = self._knn(todo, refs, kk)
            self.nn_d[todo] = np.inf
            self.nn_i[todo] = -1
            self.nn_d[todo, :kk] = dd
            self.nn_i[todo, :kk] = ii
        self.n_knn_builds += 1

    def _seed_edges(self, examined):
        """Unexamined kNN edges below max_dist that pass the seed tests, sorted by distance."""
        refs = np.flatnonzero(self.free)
        nb = self.nn_i[refs]
        src = np.repeat(refs, nb.shape[1])
        dst = nb.ravel()
        approx = self.nn_d[refs].ravel()
        # Float32 distances are only used to prune; the margin keeps borderline edges.
        ok = (dst >= 0) & (approx < self.max_dist + 1e-3)
        a, b = np.minimum(src[ok], dst[ok]), np.maximum(src[ok], dst[ok])
        keys = np.unique(a * self.n + b)
        keys = keys[~np.isin(keys, examined, assume_unique=True)]
        i, j = keys // self.n, keys % self.n
        d0 = _exact_pair_sqdist(self.X, i, j, self.chunk)
        keep = d0 < self.max_dist
        i, j, d0, keys = i[keep], j[keep], d0[keep], keys[keep]
        # Every edge here is examined in this pass: seed-rejected pairs would be rejected
        # again (the test does not depend on assignments) and grown pairs are never retried.
        examined = np.union1d(examined, keys)
        S = self._pair_profile_distance(i, j)
        keep = (S <= self.tau) & (d0 > 0)
        i, j, d0 = i[keep], j[keep], d0[keep]
        order = np.lexsort((j, i, d0))
        return i[order], j[order], d0[order], examined

    def _pair_profile_distance(self, i, j):
        """Seed test S(i, j): mean |D_i. - D_j.| over anchors, with columns i and j zeroed."""
        S = np.empty(len(i), dtype=np.float64)
        for s in range(0, len(i), self.chunk):
            a, b = i[s : s + self.chunk], j[s : s + self.chunk]
            Pa, Pb = self.P[a], self.P[b]
            tot = np.abs(Pa - Pb).sum(axis=1, dtype=np.float64)
            # The release zeroes both rows at columns i and j; where i or j is an anchor,
            # remove the term that column contributed.
            r = np.arange(len(a))
            for c in (self.anchor_pos[a], self.anchor_pos[b]):
                has = c >= 0
                tot[has] -= np.abs(Pa[r[has], c[has]] - Pb[r[has], c[has]])
            S[s : s + self.chunk] = tot / self.m
        return S

    # -- growth --------------------------------------------------------------------------

    def _add(self, cl, pos):
        g = self.free_idx[pos]
        cl.cnt += len(pos)
        for s in range(0, len(pos), self.chunk):
            ps, gs = pos[s : s + self.chunk], g[s : s + self.chunk]
            cl.sum_x += self.Xf[ps].sum(axis=0, dtype=np.float64)
            cl.sum_p += self.P[gs].sum(axis=0, dtype=np.float64)
        cl.sum_sq += float(self.sq64[g].sum())
        ap = self.anchor_pos[g]
        np.add.at(cl.self_cols, ap[ap >= 0], 1.0)

    def _profile_pass(self, g, prof, mu):
        ok = np.empty(len(g), dtype=bool)
        for s in range(0, len(g), self.chunk):
            gs = g[s : s + self.chunk]
            V = self.P[gs]
            ap = self.anchor_pos[gs]
            has = np.flatnonzero(ap >= 0)
            V[has, ap[has]] = mu          # a candidate sees itself at mu, like the members
            ok[s : s + self.chunk] = np.abs(V - prof).sum(axis=1, dtype=np.float64) / self.m < self.tau
        return ok

    def _centre_sqdist(self, centres):
        """Squared distances (float32, len(centres) x n_free) from centres to every free row."""
        c32 = np.ascontiguousarray(centres, dtype=np.float32)
        out = c32 @ self.Xf.T
        out *= -2
        out += self.sqf[None, :]
        out += _sq_norms(c32).astype(np.float32)[:, None]
        np.maximum(out, 0, out=out)
        return out

    def _grow(self, cl, in_c, mu, ref):
        """One growth phase (profile fixed at its start); returns whether anything was added.

        ``ref`` is a reference centre with the squared distances of all free rows to it. The
        shell test needs ||x_k - xbar||^2 in a window of width 2*thres; by the triangle
        inequality ||x_k - xbar|| is within ||xbar - centre|| of ||x_k - centre||, so only rows
        whose reference distance can reach the window are evaluated exactly. This is exact
        pruning, and it replaces a mat-vec over all free rows per sweep by one per seed (the
        reference distances of seed midpoints are computed for a batch of seeds at once).
        """
        prof = cl.profile(mu)
        failed = np.zeros(len(in_c), dtype=bool)  # failed the (fixed) profile test already
        grew = False
        while True:
            xbar, s2 = cl.stats()
            hi = mu - s2 + self.tau      # window for ||x_k - xbar||^2
            lo = mu - s2 - self.tau
            if hi <= 0:
                return grew
            pool = self._window(ref, xbar, lo, hi)
            if len(pool) > self.n_free // 3:
                # Pruning has become weak (the centroid moved far): re-centre the reference,
                # which costs one mat-vec over the free rows.
                ref[0], ref[1] = xbar, self._centre_sqdist(xbar[None])[0]
                pool = self._window(ref, xbar, lo, hi)
            pool = pool[self.alive[pool] & ~in_c[pool] & ~failed[pool]]
            if not len(pool):
                return grew
            # Mean distance to the members, in closed form: ||x - xbar||^2 + s^2.
            t = self.sqf[pool] - 2.0 * (self.Xf[pool] @ xbar.astype(np.float32))
            t += float(xbar @ xbar) + s2 - mu
            cand = pool[np.abs(t) < self.tau]
            if not len(cand):
                return grew
            ok = self._profile_pass(self.free_idx[cand], prof, mu)
            failed[cand[~ok]] = True
            new = cand[ok]
            if not len(new):
                return grew
            in_c[new] = True
            self._add(cl, new)
            grew = True

    def _window(self, ref, xbar, lo, hi):
        """Free positions whose distance to xbar may lie in [sqrt(lo), sqrt(hi)] (superset)."""
        centre, e = ref
        delta = float(np.linalg.norm(xbar - centre))
        # Slack for float32 rounding of the reference distances (relative to the data scale).
        eps = self.eps_sq
        r_hi = np.sqrt(hi) + delta
        keep = e <= r_hi * r_hi + eps
        r_lo = np.sqrt(max(lo, 0.0)) - delta
        if r_lo > 0:
            keep &= e >= r_lo * r_lo - eps
        return np.flatnonzero(keep)

    def _try_seed(self, i, j, d0, ref):
        """Grow a cluster from seed pair (i, j).

        Returns (accepted, keep) where keep is the mask of working rows kept when the working
        copy was compacted, else None.
        """
        self.n_seeds_grown += 1
        pos = np.array([self.pos_in_free[i], self.pos_in_free[j]])
        in_c = np.zeros(len(self.free_idx), dtype=bool)
        in_c[pos] = True
        cl = _Cluster(self.d, self.m)
        self._add(cl, pos)
        if self._grow(cl, in_c, d0, ref):
            # Re-estimate the scale from the grown cluster and grow again (release step 8);
            # if nothing was added, mu is already d0 and a second phase would be identical.
            _, s2 = cl.stats()
            self._grow(cl, in_c, 2.0 * s2 * cl.cnt / (cl.cnt - 1), ref)
        if cl.cnt <= self.min_clus:
            return False, None
        xbar, s2 = cl.stats()
        mu = 2.0 * s2 * cl.cnt / (cl.cnt - 1)
        members = self.free_idx[in_c]
        self.clusters.append(dict(center=xbar, s2=s2, mu=mu, profile=cl.profile(mu),
                                  seed_distance=float(d0), seed_pair=(int(i), int(j)),
                                  size=len(members)))
        self.labels[members] = len(self.clusters) - 1
        self.free[members] = False
        self.alive[in_c] = False
        self.pos_in_free[members] = -1
        self.n_free -= len(members)
        if self.n_free < 0.75 * len(self.alive):
            return True, self._compact()
        return True, None

    def run(self, batch=64):
        self.pos_in_free = np.arange(self.n)
        self.n_free = self.n
        # Float32 rounding scale of squared distances: slack for the exact pruning, and the
        # distance under which two rows count as duplicates in the kNN graph.
        self.eps_sq = 1e-5 * (1.0 + float(self.sq64.max()))
        examined = np.empty(0, dtype=np.int64)
        while self.n_free >= 2:
            self._update_knn()
            ii, jj, dd, examined = self._seed_edges(examined)
            ii, jj, dd = ii.tolist(), jj.tolist(), dd.tolist()
            accepted = 0
            p = 0
            while p < len(ii) and self.n_free >= 2:
                # The next seeds whose ends are free now; their midpoints' distances to all
                # free rows come from one matrix product. A row's distance to a midpoint does
                # not depend on other assignments, so the batch stays valid (rows that leave
                # the free set are dropped through `rowmap`).
                todo = []
                while p < len(ii) and len(todo) < batch:
                    if self.free[ii[p]] and self.free[jj[p]]:
                        todo.append(p)
                    p += 1
                if not todo:
                    break
                bi = np.array([ii[q] for q in todo])
                bj = np.array([jj[q] for q in todo])
                mids = (self.X[bi].astype(np.float64) + self.X[bj]) / 2
                E = self._centre_sqdist(mids)
                rowmap = None
                for col, q in enumerate(todo):
                    i, j = ii[q], jj[q]
                    if not (self.free[i] and self.free[j]):
                        continue
                    e = E[col] if rowmap is None else E[col][rowmap]
                    ok, keep = self._try_seed(i, j, dd[q], [mids[col], e])
                    accepted += ok
                    if keep is not None:
                        rowmap = np.flatnonzero(keep) if rowmap is None else rowmap[keep]
                    if self.n_free < 2:
                        break
            if not accepted:
                break
        return self


# --------------------------------------------------------------------------- public class


class DistributionClustering:
    """Distribution clustering (Lin et al., CVPR 2018), scalable version; sklearn-style.

    Instances of one distribution in high dimensions all sit at nearly the same distance from
    any fixed point (a thin "hyper-shell"), so their rows of the distance matrix nearly
    coincide. The method seeds clusters at close pairs with matching distance profiles and
    grows them by that profile and by the shell; it finds the number of clusters itself and
    leaves outliers unclustered. Low-variance clusters are the likely-normal data.

    Parameters
    ----------
    thres : float, default 0.1
        How closely two points' distance patterns must match to be called the same
        distribution, in squared-distance units of the (normalised) features. It is used for
        both tests: a point's distances to all other points must differ from the cluster's
        average pattern by less than ``thres`` on average, and its average distance to the
        cluster's members must be within ``thres`` of the members' own average distance to
        each other. Too small and clusters shatter or nothing clusters; too large and
        distributions merge and outliers get absorbed. The paper uses 0.05-0.1;
        :func:`estimate_thres` suggests a value from the data.
    min_clus : int, default 7
        Smallest group that is *not* a cluster: a cluster must have more than ``min_clus``
        points (at least ``min_clus + 1``); smaller groups stay unclustered.
    max_dist : float, default 1.4
        Seeding stops when the closest pair of still-unclustered points is at least this far
        apart (squared distance). It caps the spread of distributions that can start a
        cluster and keeps scattered outliers from seeding clusters of their own. For unit
        vectors, squared distance is 2 - 2 cos, so 1.4 means cosine similarity above 0.3.
    normalize : {"l2", "center-l2", "none"}, default "l2"
        Row preprocessing before distances: unit length; subtract the training mean, then
        unit length (the authors' "shell normalisation"); or none.
    n_anchors : int, default 1024
        Number of random rows whose distances stand in for "distances to every point" in the
        profile tests. With ``n_anchors >= n`` the tests are exactly the release's.
    n_neighbors : int, default 20
        Neighbours per row in the kNN graph whose edges supply the seed pairs.
    sample : int or None, default None
        If set and smaller than the number of rows, cluster only this many randomly chosen
        rows and assign the rest out of sample (see ``predict``).
    chunk_size : int, default 4096
        Rows per block; bounds working memory to about ``chunk_size**2`` floats.
    random_state : int or None, default 0
        Seed for the anchor and subsample draws. ``None`` draws fresh entropy.

    Memory is about ``4 * n * (2 d + m)`` bytes (features, a working copy and the n x m anchor
    distances) plus a few ``chunk_size**2`` float blocks; nothing n x n is built. Time is
    dominated by the exact brute-force kNN graph, O(n^2 d) per build.

    Attributes
    ----------
    labels_ : ndarray of int64, shape (n,)
        Cluster of each row of the fitted data, 0..K-1 in discovery order (roughly increasing
        variance); -1 means unclustered.
    n_clusters_ : int
        Number of clusters K.
    cluster_sizes_ : ndarray of int64, shape (K,)
        Rows of the fitted data in each cluster (including rows assigned out of sample).
    cluster_s2_ : ndarray of float64, shape (K,)
        Cluster variance s^2: mean squared distance of the clustered members to their centroid
        in the normalised feature space. Rank clusters by this.
    cluster_mu_ : ndarray of float64, shape (K,)
        Members' mean pairwise squared distance, mu = 2 s^2 |C| / (|C| - 1) (the release's
        ``clus_dist``); the cluster's shell scale, used by ``predict``.
    cluster_centers_ : ndarray of float32, shape (K, d)
        Centroids of the clustered members in the normalised feature space.
    cluster_profiles_ : ndarray of float32, shape (K, m)
        Mean squared distance from the members to each anchor (members that are anchors count
        themselves at mu), used by the profile test in ``predict``.
    seed_distances_ : ndarray of float64, shape (K,)
        Squared distance of the seed pair that started each cluster (all below ``max_dist``).
    seed_pairs_ : ndarray of int64, shape (K, 2)
        Row indices (into the fitted data) of each cluster's seed pair.
    anchor_indices_ : ndarray of int64, shape (m,)
        Rows of the fitted data used as anchors, m = min(n_anchors, rows clustered).
    anchors_ : ndarray of float32, shape (m, d)
        The anchors in the normalised feature space.
    center_ : ndarray of float32, shape (d,), or None
        Training mean subtracted by ``normalize="center-l2"``; None otherwise.
    sample_indices_ : ndarray of int64
        Rows clustered directly (sorted); the other rows were assigned out of sample.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    n_knn_builds_ : int
        kNN graph (re)builds performed.
    n_seeds_grown_ : int
        Seed pairs that passed the seed tests and were grown (accepted or not).
    """

    def __init__(self, thres=_DEFAULTS["thres"], min_clus=_DEFAULTS["min_clus"], max_dist=_DEFAULTS["max_dist"],
                 normalize=_DEFAULTS["normalize"], n_anchors=_DEFAULTS["n_anchors"], n_neighbors=_DEFAULTS["n_neighbors"],
                 sample=None, chunk_size=4096, random_state=0):
        self.thres = thres
        self.min_clus = min_clus
        self.max_dist = max_dist
        self.normalize = normalize
        self.n_anchors = n_anchors
        self.n_neighbors = n_neighbors
        self.sample = sample
        self.chunk_size = chunk_size
        self.random_state = random_state

    def _check_params(self):
        thres, min_clus, max_dist = _check_core(self.thres, self.min_clus, self.max_dist, self.normalize)
        n_anchors = _check_int("n_anchors", self.n_anchors, low=1)
        n_neighbors = _check_int("n_neighbors", self.n_neighbors, low=1)
        sample = None if self.sample is None else _check_int("sample", self.sample, low=2)
        chunk = _check_int("chunk_size", self.chunk_size, low=1)
        seed = _check_random_state(self.random_state)
        return thres, min_clus, max_dist, n_anchors, n_neighbors, sample, chunk, seed

    def fit(self, X) -> "DistributionClustering":
        """Cluster the rows of X (n x d); see the class docstring for the attributes set."""
        thres, min_clus, max_dist, n_anchors, n_neighbors, sample, chunk, seed = self._check_params()
        X = _check_rows(X)
        n = X.shape[0]
        rng = np.random.default_rng(seed)
        Xn, center = _normalize(X, self.normalize)
        if sample is not None and sample < n:
            sidx = np.sort(rng.choice(n, size=sample, replace=False))
        else:
            sidx = np.arange(n)
        ns = len(sidx)
        m = min(n_anchors, ns)
        apos = np.arange(ns) if m == ns else np.sort(rng.choice(ns, size=m, replace=False))
        anchors = np.ascontiguousarray(Xn[sidx[apos]])
        # Distances are translation invariant; measuring from the anchors' mean (near the data
        # centre) keeps float32 distances accurate. predict uses the same shift.
        shift = anchors.mean(axis=0, dtype=np.float64).astype(np.float32)
        Xs = np.ascontiguousarray(Xn[sidx] - shift, dtype=np.float32)
        if ns == n:
            del Xn                    # only the rows left out of the sample need it later
        run = _ScalableRun(Xs, apos, thres, min_clus, max_dist, n_neighbors, chunk).run()
        del Xs

        K = len(run.clusters)
        d = X.shape[1]
        self.n_features_in_ = d
        self.center_ = center
        self.anchor_indices_ = sidx[apos].astype(np.int64)
        self.anchors_ = anchors
        self.sample_indices_ = sidx.astype(np.int64)
        self.n_clusters_ = K
        self.cluster_s2_ = np.array([c["s2"] for c in run.clusters], dtype=np.float64)
        self.cluster_mu_ = np.array([c["mu"] for c in run.clusters], dtype=np.float64)
        self.cluster_centers_ = (np.array([c["center"] for c in run.clusters], dtype=np.float64)
                                 .reshape(K, d) + shift).astype(np.float32)
        self.cluster_profiles_ = np.array([c["profile"] for c in run.clusters],
                                          dtype=np.float32).reshape(K, m)
        self.seed_distances_ = np.array([c["seed_distance"] for c in run.clusters], dtype=np.float64)
        self.seed_pairs_ = sidx[np.array([c["seed_pair"] for c in run.clusters],
                                         dtype=np.int64).reshape(K, 2)]
        self.n_knn_builds_ = run.n_knn_builds
        self.n_seeds_grown_ = run.n_seeds_grown

        labels = np.full(n, -1, dtype=np.int64)
        labels[sidx] = run.labels
        if ns < n:
            rest = np.setdiff1d(np.arange(n), sidx)
            labels[rest] = self._assign(Xn[rest])
        self.labels_ = labels
        self.cluster_sizes_ = np.bincount(labels[labels >= 0], minlength=K).astype(np.int64)
        return self

    def fit_predict(self, X) -> np.ndarray:
        """Fit on X and return ``labels_``."""
        return self.fit(X).labels_

    def predict(self, X) -> np.ndarray:
        """Assign new rows to the fitted clusters (-1 = none), without changing the model.

        A row joins the cluster whose two tests it passes — it lies on the cluster's shell
        (``| ||x - centroid||^2 + s^2 - mu | < thres``) and its distances to the anchors match
        the cluster's profile (mean absolute difference ``< thres``) — with the smallest shell
        deviation; a row that passes no cluster's tests is unclustered. This is an
        out-of-sample rule: applied to the training rows it need not reproduce ``labels_``.
        """
        if not hasattr(self, "labels_"):
            raise RuntimeError("DistributionClustering is not fitted yet; call fit(X) first")
        self._check_params()
        X = check_array(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns but the model was fitted on {self.n_features_in_}")
        Xn, _ = _normalize(X, self.normalize, self.center_)
        return self._assign(Xn)

    def _assign(self, Xn):
        """Out-of-sample rule on normalised rows (module docstring: out-of-sample assignment);
        O(n K (d + m))."""
        n = Xn.shape[0]
        out = np.full(n, -1, dtype=np.int64)
        K = self.n_clusters_
        if K == 0:
            return out
        tau = float(self.thres)
        chunk = int(self.chunk_size)
        shift = self.anchors_.mean(axis=0, dtype=np.float64).astype(np.float32)
        A = self.anchors_ - shift
        sqa = _sq_norms(A).astype(np.float32)
        Cc = self.cluster_centers_ - shift
        sqc = _sq_norms(Cc).astype(np.float32)
        level = (self.cluster_s2_ - self.cluster_mu_).astype(np.float32)
        m = A.shape[0]
        for s in range(0, n, chunk):
            Xc = np.ascontiguousarray(Xn[s : s + chunk] - shift, dtype=np.float32)
            sqx = _sq_norms(Xc).astype(np.float32)
            dev = np.abs(_sqdist_block(Xc, sqx, Cc, sqc) + level)
            r, c = np.nonzero(dev < tau)
            if not len(r):
                continue
            Pn = _sqdist_block(Xc, sqx, A, sqa)
            ok = np.empty(len(r), dtype=bool)
            for t in range(0, len(r), chunk):
                rr, cc = r[t : t + chunk], c[t : t + chunk]
                S = np.abs(Pn[rr] - self.cluster_profiles_[cc]).sum(axis=1, dtype=np.float64) / m
                ok[t : t + chunk] = S < tau
            best = np.full(dev.shape, np.inf, dtype=np.float32)
            best[r[ok], c[ok]] = dev[r[ok], c[ok]]
            lab = np.argmin(best, axis=1)
            found = np.isfinite(best[np.arange(len(lab)), lab])
            out[s : s + chunk][found] = lab[found]
        return out


# --------------------------------------------------------------------------- thres heuristic


def estimate_thres(X, *, normalize=_DEFAULTS["normalize"], n_samples=2000, quantile=0.5,
                   n_anchors=_DEFAULTS["n_anchors"], chunk_size=4096, random_state=0, return_values=False):
    """Suggest ``thres`` from the data: a quantile of nearest-neighbour profile distances.

    For up to ``n_samples`` random rows i, find the nearest other row j (ignoring exact
    duplicates) and compute the seed test value S(i, j) — the mean absolute difference of the
    two rows' squared distances to ``n_anchors`` random anchor rows. Two instances of one
    distribution never match exactly because of sampling noise; ``thres`` has to clear that
    noise floor, so a value between the median and the upper quartile of these values is a
    starting point (``quantile`` 0.5-0.75). Returns the quantile, or ``(quantile, values)`` with
    ``return_values=True`` (the per-row values, for a histogram).
    """
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {', '.join(_NORMALIZE)}, got {normalize!r}")
    n_samples = _check_int("n_samples", n_samples, low=1)
    quantile = _check_real("quantile", quantile, low=0.0, low_open=False)
    if quantile > 1:
        raise ValueError(f"quantile must be at most 1, got {quantile!r}")
    n_anchors = _check_int("n_anchors", n_anchors, low=1)
    chunk = _check_int("chunk_size", chunk_size, low=1)
    seed = _check_random_state(random_state)
    X = _check_rows(X)
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    Xn, _ = _normalize(X, normalize)
    m = min(n_anchors, n)
    aidx = np.arange(n) if m == n else np.sort(rng.choice(n, size=m, replace=False))
    shift = Xn[aidx].mean(axis=0, dtype=np.float64).astype(np.float32)
    Xs = np.ascontiguousarray(Xn - shift, dtype=np.float32)
    sq = _sq_norms(Xs).astype(np.float32)
    qidx = np.sort(rng.choice(n, size=min(n_samples, n), replace=False))
    # Nearest non-identical neighbour of each sampled row (exact, blockwise).
    nn_d = np.full(len(qidx), np.inf)
    nn_i = np.full(len(qidx), -1, dtype=np.int64)
    Xq, sqq = Xs[qidx], sq[qidx]
    rq = np.arange(len(qidx))
    for s in range(0, n, chunk):
        G = _sqdist_block(Xq, sqq, Xs[s : s + chunk], sq[s : s + chunk])
        own = (qidx >= s) & (qidx < s + G.shape[1])
        G[rq[own], qidx[own] - s] = np.inf
        # Duplicates are not neighbours (the clustering skips zero-distance seeds); float32
        # rounding of the distance formula is ~1e-7, hence the tolerance.
        G[G <= _DUPLICATE_TOL] = np.inf
        j = np.argmin(G, axis=1)
        dj = G[rq, j]
        better = dj < nn_d
        nn_d[better], nn_i[better] = dj[better], j[better] + s
    valid = nn_i >= 0
    i, j = qidx[valid], nn_i[valid]
    if not len(i):
        raise ValueError("all rows are identical, so there is no noise floor to estimate thres from")
    sqa = sq[aidx]
    apos = np.full(n, -1, dtype=np.int64)
    apos[aidx] = np.arange(m)
    vals = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), chunk):
        a, b = i[s : s + chunk], j[s : s + chunk]
        Pa = _sqdist_block(Xs[a], sq[a], Xs[aidx], sqa)
        Pb = _sqdist_block(Xs[b], sq[b], Xs[aidx], sqa)
        r = np.arange(len(a))
        for c in (apos[a], apos[b]):          # the seed test zeroes columns i and j
            has = c >= 0
            Pa[r[has], c[has]] = 0.0
            Pb[r[has], c[has]] = 0.0
        vals[s : s + chunk] = np.abs(Pa - Pb).sum(axis=1, dtype=np.float64) / m
    est = float(np.quantile(vals, quantile))
    return (est, vals) if return_values else est
