"""The dense distribution clustering of the authors' released MATLAB code, step for step: the test
oracle that tests/test_distribution.py checks deepuad.estimators.distribution's scalable version
against. It builds the n x n distance matrix, so it serves a few thousand rows, not the package.

It shares the package's validation, normalisation and exact pair distances, so the two differ
only where the algorithms do (dense matrix and per-addition growth here; anchor profiles, kNN
seeding and batched growth there)."""

import numpy as np

from deepuad.estimators.distribution import _check_core, _check_rows, _exact_pair_sqdist, _normalize, _sq_norms

# The dense oracle holds an n x n float64 matrix (plus its sorted pair list); above this it
# would need gigabytes, which is what the scalable class exists to avoid.
_REFERENCE_MAX_ROWS = 10_000
# Formula-based squared distances below this are recomputed from the difference vector, so
# that exact duplicates give exactly 0 (the release skips zero-distance seed pairs).
_TINY = 1e-9


def distribution_clustering_reference(X, thres, min_clus, max_dist, normalize="l2", *, return_mu=False):
    """Dense distribution clustering, literally as the release does it; test oracle.

    Builds the full n x n squared-distance matrix in float64, so it is limited to
    10,000 rows. Pairs are walked in increasing distance (ties by row index); growth adds
    points one at a time, each updating the shell statistic for the next.

    Parameters are those of ``DistributionClustering``.

    Returns ``labels`` (int64, -1 = unclustered, clusters 0..K-1 in discovery order), or
    ``(labels, mu)`` with ``return_mu=True``, where ``mu[c]`` is the final members' mean
    pairwise squared distance.
    """
    thres, min_clus, max_dist = _check_core(thres, min_clus, max_dist, normalize)
    X = _check_rows(X)
    n = X.shape[0]
    if n > _REFERENCE_MAX_ROWS:
        raise ValueError(f"the dense reference is limited to {_REFERENCE_MAX_ROWS} rows (it builds an "
                         f"n x n matrix), got {n}; use DistributionClustering instead")
    Xn, _ = _normalize(X.astype(np.float64), normalize)
    # Squared distances are translation invariant; centring first keeps the
    # ||a||^2 + ||b||^2 - 2ab formula accurate when the rows sit far from the origin.
    Xs = Xn - Xn.mean(axis=0)
    sq = _sq_norms(Xs)
    D = sq[:, None] + sq[None, :] - 2.0 * (Xs @ Xs.T)
    np.maximum(D, 0, out=D)
    ti, tj = np.nonzero(np.triu(D < _TINY, 1))
    if len(ti):
        exact = _exact_pair_sqdist(Xs, ti, tj, 4096)
        D[ti, tj] = exact
        D[tj, ti] = exact
    np.fill_diagonal(D, 0.0)

    # Sorting all candidate pairs once replaces the release's repeated global argmin: the
    # next unexamined pair with both ends unassigned is the next such pair in this list.
    iu, ju = np.nonzero(np.triu(D < max_dist, 1))
    dd = D[iu, ju]
    order = np.argsort(dd, kind="stable")
    iu, ju, dd = iu[order], ju[order], dd[order]

    labels = np.full(n, -1, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    mus = []
    rows = np.arange(n)
    batch = 256
    pos = 0
    while pos < len(dd):
        if not free.any():
            break
        bi, bj, bd = iu[pos : pos + batch], ju[pos : pos + batch], dd[pos : pos + batch]
        pos += batch
        keep = free[bi] & free[bj]
        bi, bj, bd = bi[keep], bj[keep], bd[keep]
        if not len(bi):
            continue
        # The seed test does not depend on which points are assigned, so it can be batched.
        A = D[bi]
        B = D[bj]
        r = np.arange(len(bi))
        A[r, bj] = 0.0
        B[r, bi] = 0.0
        S = np.abs(A - B).sum(axis=1) / n
        for i, j, d0, s in zip(bi, bj, bd, S):
            if not (free[i] and free[j]):
                continue
            if s > thres or d0 == 0:
                continue
            inC = np.zeros(n, dtype=bool)
            inC[[i, j]] = True
            _dense_grow(D, free, inC, d0, thres)
            cnt = int(inC.sum())
            mu = float(D[np.ix_(inC, inC)].sum()) / (cnt * (cnt - 1))
            _dense_grow(D, free, inC, mu, thres)
            if inC.sum() > min_clus:
                members = rows[inC]
                labels[members] = len(mus)
                free[members] = False
                c = len(members)
                mus.append(float(D[np.ix_(members, members)].sum()) / (c * (c - 1)))
    if return_mu:
        return labels, np.asarray(mus, dtype=np.float64)
    return labels


def _dense_grow(D, free, inC, mu, tau):
    """One growth phase of the reference (profile fixed, shell statistic updated per addition)."""
    n = D.shape[0]
    cnt = int(inC.sum())
    # Mean profile of the members; each member sees itself at the cluster scale mu.
    prof = D[inC].sum(axis=0)
    prof[inC] += mu
    prof /= cnt
    cidx = np.flatnonzero(free & ~inC)
    passing = []
    for s in range(0, len(cidx), 512):
        c = cidx[s : s + 512]
        # Row of D with the candidate's own entry (0) replaced by mu.
        S = np.abs(D[c] - prof).sum(axis=1) - np.abs(prof[c]) + np.abs(mu - prof[c])
        passing.append(c[S / n < tau])
    # With the profile fixed, a candidate failing the profile test fails it in every sweep.
    remaining = np.concatenate(passing) if passing else np.empty(0, dtype=np.int64)
    sumD = D[:, inC].sum(axis=1)
    changed = True
    while changed and len(remaining):
        changed = False
        still = []
        for k in remaining:
            if abs(sumD[k] / cnt - mu) < tau:
                inC[k] = True
                cnt += 1
                sumD += D[k]
                changed = True
            else:
                still.append(k)
        remaining = still
    return inC
