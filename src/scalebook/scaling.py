"""Scaling-law fits: Chinchilla Approach 3 and the loss-versus-compute power law, done right and fast.

Every law here is a log-sum-exp of terms that are linear in the parameters::

    log L_hat = LSE_k(z_k),   z_k = c_k + sum_j theta_j x_kj

* `fit_chinchilla`: L(N, D) = E + A / N^alpha + B / D^beta, i.e.
  log L_hat = LSE(a - alpha log N, b - beta log D, e) with E = e^e, A = e^a, B = e^b
  (Hoffmann et al. 2022, Approach 3; the replication of Besiroglu et al. 2024).
  A third factor (a "covariate" such as T_m) enters as further linear terms inside chosen
  components: a numeric covariate T multiplies a term by T^gamma (gamma is fitted jointly), a
  categorical one by a fitted ratio per level (relative to the first level).
* `fit_power_law`: L(C) = E + (C0 / C)^alpha, i.e. log L_hat = LSE(e, a - alpha log C) with
  E = e^e and C0 = exp(a / alpha).

The objective is the Huber loss (threshold `huber_delta`, default 1e-3) of the log residuals
log L_hat - log L, *summed* over rows. Two published pitfalls shape the engine:

* scipy's L-BFGS-B stops after a couple of iterations on this objective when it is averaged (its
  tolerance is relative to max(|f|, 1), and f is ~1e-6), and the original Chinchilla fit stopped
  early. Here every start runs until the largest gradient component, in standardised coordinates,
  is below ``gtol * huber_delta * n`` (``n * huber_delta`` is the largest gradient the rows can
  produce), and the best few are then polished with exact Newton steps to a much tighter tolerance.
* Only a minority of grid starts reach the global optimum, so the fit always uses many starts
  (the 4500-point Hoffmann grid by default) and reports how many reached the optimum.

All starts are optimised together: the steps are batched in numpy, and the objective, exact gradient
and curvature of every start are computed in one compiled, multi-core pass over the data
(`scalebook._lse_kernel`, numba; double precision throughout). The method is a Levenberg-Marquardt-
damped, trust-region limited second-order one. Far from a solution it uses the iteratively-reweighted
Gauss-Newton matrix (weights psi(r)/r: positive semi-definite and robust to the near-L1 shape of a
Huber loss with a small threshold); once a start's gradient is small it switches to the exact Hessian
(eigenvalues taken in absolute value, so saddles are escaped), which converges quadratically. Parameters are
internally centred and scaled (log N minus its mean, over its standard deviation) so one damping
scale suits every direction; results are reported in the published parametrisation. With at least
COARSE_MIN_ROWS rows, every start first takes its Gauss-Newton phase on a quarter of the rows (far
from a solution they point the way as well as all rows), then runs to convergence on all rows.

A start stops when (i) its gradient is below tolerance, or its Newton step promises less than the
objective's rounding (converged); (ii) no step, however short, lowers its objective; (iii) its
objective fell by less than 1e-10 (relative) over STAGNATION_ITERS iterations (creeping toward an
optimum at infinity, such as E -> 0); or (iv) its objective is more than HOPELESS_RATIO times the
best current objective on the same data and fell by less than HOPELESS_GAIN over those iterations.
(ii)-(iv) are reported as not converged; (iv) only saves work on starts that cannot be the optimum.
The reported optimum itself is always polished to GTOL_POLISH and checked (`converged`, `gradient`,
`decrement`).

Intervals are bootstrap percentile intervals: resampling rows (or whole clusters such as training
runs, when `clusters` is given), refitting each resample from the full-data optimum and two random
grid starts, all resamples optimised together; a resample's estimate is its best endpoint.
"""
from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numba
import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from . import _lse_kernel, tables
from .errors import DataError, FitError

DEFAULT_HUBER_DELTA = 1e-3

#: The published Hoffmann et al. (2022) grid of starting points: 5 x 6 x 6 x 5 x 5 = 4500 starts.
HOFFMANN_GRID: dict[str, np.ndarray] = {
    "e": np.arange(-1.0, 1.01, 0.5),
    "a": np.arange(0.0, 25.1, 5.0),
    "b": np.arange(0.0, 25.1, 5.0),
    "alpha": np.arange(0.0, 2.01, 0.5),
    "beta": np.arange(0.0, 2.01, 0.5),
}

# Curvature modes: the Gauss-Newton matrix (far from a solution), the exact Hessian (to finish).
GAUSS_NEWTON, EXACT = 0, 1

# Relative objective tolerance within which a start counts as having reached the optimum.
OPTIMUM_RTOL = 1e-6
# Gradient tolerances (relative to huber_delta * n, in standardised coordinates).
GTOL = 1e-8  # each start of the multi-start search
GTOL_POLISH = 1e-12  # the polishing of the best candidates
GTOL_CONVERGED = 1e-9  # the reported optimum converged if its gradient is below this...
DECREMENT_CONVERGED = 1e-12  # ...or a Newton step would lower the objective by less than this, relative
DECREMENT_FLOOR = 1e-15  # a start of the multi-start search stops at this relative Newton decrement
# A start switches from the Gauss-Newton to the exact-Hessian step once its gradient is below this.
GEXACT = 4e-3
# Batches of fewer (start, row) pairs than this are evaluated on one thread.
PARALLEL_MIN_PAIRS = 100_000
# The kernel's stand-in for "no row weights".
_NO_WEIGHTS = np.empty((0, 0))
# Iterations over which a start must improve its objective to keep going.
STAGNATION_ITERS = 25
SLOW_GAIN = 1e-2
# A start stops when its objective is above HOPELESS_RATIO times the best of its group and fell by less than
# HOPELESS_GAIN (relative) over the last STAGNATION_ITERS iterations.
HOPELESS_RATIO = 2.0
HOPELESS_GAIN = 1e-2
# The coarse first pass of a multi-start fit (on every COARSE_STRIDE-th row, when there are enough rows).
COARSE_MIN_ROWS = 160
COARSE_STRIDE = 4
COARSE_MAX_ITER = 60
COARSE_STOP = 1.0  # the first pass ends below this multiple of the Gauss-Newton-phase gradient


# =====================================================================================
# The model: log L_hat = LSE over components of linear functions of the parameters
# =====================================================================================

@dataclass(frozen=True)
class _Component:
    """One term of the law: z = theta[intercept] + sum_j theta[slope_j] * column_j."""

    term: str  # the term's name in the law: "E", "A", "B"
    intercept: str  # raw parameter name of its log-scale intercept
    slopes: tuple[tuple[str, np.ndarray], ...] = ()  # (raw parameter name, raw column)


class _Model:
    """The standardised design of an LSE-of-terms law on one data set, with its objective."""

    def __init__(self, components: Sequence[_Component], y: np.ndarray):
        self.components = list(components)
        self.terms = [c.term for c in self.components]
        self.y = np.asarray(y, dtype=float)
        self.n = len(self.y)
        self.K = len(self.components)
        names = [c.intercept for c in self.components]
        for c in self.components:
            names += [p for p, _ in c.slopes]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be unique, got {names}")
        self.names = names
        self.P = len(names)
        col = {p: i for i, p in enumerate(names)}
        # theta_int = M @ theta_raw: slopes scaled by their column's sd; each intercept absorbs
        # the means of its component's columns, so intercepts live at the data's centre.
        M = np.eye(self.P)
        X = np.zeros((self.K, self.n, self.P))
        self.centre: dict[str, float] = {}
        self.scale: dict[str, float] = {}
        for k, c in enumerate(self.components):
            ci = col[c.intercept]
            X[k, :, ci] = 1.0
            for p, x in c.slopes:
                x = np.asarray(x, dtype=float)
                m, s = float(x.mean()), float(x.std())
                s = s if s > 0 else 1.0
                self.centre[p], self.scale[p] = m, s
                pi = col[p]
                M[pi, pi] = s
                M[ci, pi] = m
                X[k, :, pi] = (x - m) / s
        self.M = M
        self.Minv = np.linalg.inv(M)
        # The kernel's layout: per component the indices of its parameters (padded with -1), their
        # standardised columns (padded with zeros), how many there are, and whether it is constant over rows.
        params_of = [np.flatnonzero(np.any(X[k] != 0, axis=0)) for k in range(self.K)]
        self.kwidth = np.array([idx.size for idx in params_of], dtype=np.int64)
        self.kidx = np.full((self.K, self.kwidth.max()), -1, dtype=np.int64)
        self.kx = np.zeros((self.K, self.kwidth.max(), self.n))
        for k, idx in enumerate(params_of):
            self.kidx[k, :idx.size] = idx
            self.kx[k, :idx.size] = X[k][:, idx].T
        self.kconst = np.array([not c.slopes for c in self.components], dtype=np.bool_)

    def take(self, rows: np.ndarray) -> "_Model":
        """The same law and standardisation on a subset of the rows."""
        sub = object.__new__(_Model)
        sub.__dict__.update(self.__dict__)
        sub.y, sub.n = self.y[rows], len(rows)
        sub.kx = np.ascontiguousarray(self.kx[:, :, rows])
        return sub

    # -- parametrisations ----------------------------------------------------------------
    def to_internal(self, theta_raw: np.ndarray) -> np.ndarray:
        return np.asarray(theta_raw, dtype=float) @ self.M.T

    def to_raw(self, theta_int: np.ndarray) -> np.ndarray:
        return np.asarray(theta_int, dtype=float) @ self.Minv.T

    # -- objective -----------------------------------------------------------------------
    def evaluate(self, theta: np.ndarray, delta: float, *, weights: np.ndarray | None = None,
                 mode: np.ndarray | int = EXACT, hessian: bool = True):
        """Objective, gradient and curvature matrix for a batch of starts (see `_lse_kernel`).

        `theta` is (S, P) in internal coordinates; `weights` (S, n) row weights (bootstrap
        counts) or None; `mode` (an int or one per start): GAUSS_NEWTON gives the
        iteratively-reweighted Gauss-Newton matrix sum_i (psi(r_i) / r_i) J_i J_i', EXACT the exact
        Hessian.
        """
        theta = np.ascontiguousarray(np.atleast_2d(theta), dtype=float)
        S = theta.shape[0]
        f = np.empty(S)
        g = np.empty((S, self.P))
        H = np.empty((S, self.P, self.P) if hessian else (0, self.P, self.P))
        exact = np.broadcast_to(np.asarray(mode, dtype=int) != GAUSS_NEWTON, (S,)).copy()
        w = _NO_WEIGHTS if weights is None else np.ascontiguousarray(weights, dtype=float)
        # Small batches run on the calling thread: waking the kernel's thread pool costs more than it saves,
        # and on a busy machine (two notebooks at once) a parallel call can wait milliseconds for a core.
        threads = numba.get_num_threads()
        numba.set_num_threads(threads if S * self.n >= PARALLEL_MIN_PAIRS else 1)
        try:
            _lse_kernel.huber_lse(theta, self.kidx, self.kwidth, self.kconst, self.kx, self.y, w, float(delta),
                                  exact, hessian, f, g, H)
        finally:
            numba.set_num_threads(threads)
        return f, g, (H if hessian else None)

    def predict_log(self, theta_raw: np.ndarray, components: Sequence[_Component], n_rows: int) -> np.ndarray:
        """log L_hat for raw parameters on (possibly new) data described by `components`."""
        col = {p: i for i, p in enumerate(self.names)}
        theta_raw = np.asarray(theta_raw, dtype=float)
        zs = np.empty((len(components), n_rows))
        for k, c in enumerate(components):
            z = np.full(n_rows, theta_raw[col[c.intercept]])
            for p, x in c.slopes:
                z = z + theta_raw[col[p]] * np.asarray(x, dtype=float)
            zs[k] = z
        top = zs.max(axis=0)
        return top + np.log(np.exp(zs - top).sum(axis=0))

    def shares(self, theta_raw: np.ndarray) -> np.ndarray:
        """Each term's share of L_hat at each row, (K, n)."""
        th = self.to_internal(theta_raw)
        z = np.einsum("kj,kjn->kn", th[self.kidx], self.kx)  # a padding index (-1) meets a zero column
        z = z - z.max(axis=0)
        e = np.exp(z)
        return e / e.sum(axis=0)


# =====================================================================================
# The optimiser: all starts at once
# =====================================================================================

@dataclass
class _Solution:
    theta: np.ndarray  # (S, P) internal
    f: np.ndarray
    gmax: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray


def _minimise(model: _Model, theta0: np.ndarray, delta: float, *, weights: np.ndarray | None = None,
              gtol: float = GTOL, max_iter: int = 400, exact_from_start: bool = False,
              max_step: float = 10.0, trace: list | None = None, coarse: bool = False,
              groups: np.ndarray | None = None) -> _Solution:
    """Minimise the summed Huber objective from every row of `theta0` (internal coordinates).

    Damped (Levenberg-Marquardt) steps in the eigenbasis of the curvature matrix with a
    trust radius on the largest coordinate change; a trial is accepted when it lowers the
    objective. A start stops when its largest gradient component is below
    ``gtol * delta * (sum of its row weights)``, or when no step, however short, lowers the
    objective (it is then reported as not converged unless its gradient is small).
    """
    theta = np.array(theta0, dtype=float, copy=True)
    S = theta.shape[0]
    total = np.full(S, float(model.n)) if weights is None else weights.sum(axis=1)
    gabs = gtol * delta * total
    gexact = GEXACT * delta * total
    mode = np.full(S, EXACT if exact_from_start else GAUSS_NEWTON)
    f, g, H = model.evaluate(theta, delta, weights=weights, mode=mode)
    gm = np.abs(g).max(axis=1)
    mu = np.full(S, 1e-3)
    radius = np.full(S, max_step)
    n_iter = np.zeros(S, dtype=int)
    if coarse:  # a first pass that only needs to bring each start near a solution
        gabs = np.maximum(gabs, COARSE_STOP * gexact)
    converged = (gm <= gabs) & ((mode == EXACT) | coarse)
    active = ~converged & np.isfinite(f)
    floor = 1e-12 * delta * float(model.n)
    eye = np.eye(model.P)
    checkpoint = f.copy()
    grp = np.zeros(S, dtype=int) if groups is None else np.asarray(groups, dtype=int)
    slow = np.zeros(S, dtype=bool)
    for it in range(max_iter):
        # Closer to a solution, or slow, a start moves to the exact Hessian (its curvature re-evaluated where
        # it stands).
        up = np.flatnonzero(active & (mode == GAUSS_NEWTON) & ((gm < gexact) | slow))
        if up.size:
            mode[up] = EXACT
            H[up] = model.evaluate(theta[up], delta, weights=None if weights is None else weights[up], mode=EXACT)[2]
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        step = np.empty((idx.size, model.P))
        md = mode[idx]
        gn = md == GAUSS_NEWTON
        if gn.any():  # Gauss-Newton: positive semi-definite, damped by a share of its trace
            gi = idx[gn]
            Hg = H[gi]
            lam = mu[gi] * np.maximum(np.trace(Hg, axis1=1, axis2=2) / model.P, floor)
            step[gn] = np.linalg.solve(Hg + lam[:, None, None] * eye, -g[gi][:, :, None])[:, :, 0]
        if (~gn).any():  # exact Hessian: eigenvalues in absolute value, so negative curvature is descended
            ei = idx[~gn]
            evals, evecs = np.linalg.eigh(H[ei])
            a = np.abs(evals)
            lam = mu[ei] * np.maximum(a.max(axis=1), floor)
            gv = np.einsum("spq,sp->sq", evecs, g[ei])
            step[~gn] = np.einsum("spq,sq->sp", evecs, -gv / (a + lam[:, None]))
            # At a minimum whose Newton step promises less than the objective's
            # rounding (the gradient may still exceed gtol where the Hessian is nearly singular): converged.
            # (A zero eigenvalue makes the decrement infinite: such a start is not at the floor.)
            decrement = np.divide(gv ** 2, a, out=np.full_like(a, np.inf), where=a > 0).sum(axis=1)
            at_floor = (evals.min(axis=1) > 0) & (0.5 * decrement <= DECREMENT_FLOOR * np.abs(f[ei]))
            floor_hit = ei[at_floor]
        else:
            floor_hit = idx[:0]
        big = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, radius[idx] / np.maximum(big, 1e-300))[:, None]
        trial = theta[idx] + step
        ft, gt, Ht = model.evaluate(trial, delta, weights=None if weights is None else weights[idx], mode=md)
        ok = ft < f[idx]
        acc, rej = idx[ok], idx[~ok]
        theta[acc], f[acc], g[acc], H[acc] = trial[ok], ft[ok], gt[ok], Ht[ok]
        gm[acc] = np.abs(gt[ok]).max(axis=1)
        mu[acc] = np.maximum(mu[acc] / 10.0, 1e-15)
        radius[acc] = np.minimum(radius[acc] * 2.0, max_step)
        mu[rej] *= 4.0
        radius[rej] /= 4.0
        n_iter[idx] += 1
        if trace is not None:
            trace.append((idx.size, int(ok.sum()), int((md == EXACT).sum()), f.copy()))
        done = (gm[idx] <= gabs[idx]) & ((mode[idx] == EXACT) | coarse)
        done |= np.isin(idx, floor_hit)
        converged[idx[done]] = True
        stalled = (radius[idx] < 1e-13) & (mode[idx] == EXACT)
        if (it + 1) % STAGNATION_ITERS == 0:
            # A start whose objective fell by less than 1e-10 (relative) over the last iterations is
            # creeping toward an optimum at infinity (a term vanishing, say E -> 0): it stops, not converged.
            gain = checkpoint[idx] - f[idx]
            stalled |= gain <= 1e-10 * np.abs(f[idx])
            # Gauss-Newton crawls on near-L1 landscapes (most residuals far outside the Huber
            # threshold): a start gaining little moves on to exact Newton steps.
            slow[idx] = gain <= SLOW_GAIN * np.abs(f[idx])
            # A start far above the best objective of its group (the same data) and gaining little has
            # no prospect of being the optimum: it stops, not converged, and frees its share of the work.
            best = np.full(int(grp.max()) + 1, np.inf)
            np.minimum.at(best, grp, np.where(np.isfinite(f), f, np.inf))
            stalled |= (gain <= HOPELESS_GAIN * np.abs(f[idx])) & (f[idx] > HOPELESS_RATIO * best[grp[idx]])
            checkpoint[idx] = f[idx]
        active[idx[done | stalled]] = False
    return _Solution(theta, f, gm / (delta * total), converged, n_iter)


def _distinct(theta: np.ndarray, order: np.ndarray, limit: int, tol: float = 1e-3) -> list[int]:
    """Indices (in `order`) of up to `limit` points that differ from each other by more than `tol`."""
    order = np.asarray([i for i in order if np.all(np.isfinite(theta[i]))], dtype=int)
    picked: list[int] = []
    while order.size and len(picked) < limit:
        i = int(order[0])
        picked.append(i)
        order = order[np.abs(theta[order] - theta[i]).max(axis=1) > tol]
    return picked


@dataclass
class _MultiStart:
    theta_raw: np.ndarray  # (P,) the optimum, raw parametrisation
    objective: float
    gmax: float
    decrement: float
    converged: bool
    n_starts: int
    n_starts_converged: int
    n_starts_at_optimum: int
    local_optima_raw: np.ndarray  # (m, P) distinct other local optima, best first
    n_iter_max: int
    seconds: float


_THREADPOOLS: list = []


def _single_threaded(func):
    # The products here are small (a few dozen starts by a few hundred rows): BLAS threads only
    # add synchronisation, and on a shared machine they make run times erratic.
    def wrapper(*args, **kwargs):
        if not _THREADPOOLS:
            _THREADPOOLS.append(ThreadpoolController())
        with _THREADPOOLS[0].limit(limits=1, user_api="blas"):
            return func(*args, **kwargs)
    wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
    return wrapper


@_single_threaded
def _multistart(model: _Model, starts_raw: np.ndarray, delta: float, *, n_polish: int = 5) -> _MultiStart:
    t0 = time.perf_counter()
    theta0 = model.to_internal(starts_raw)
    if model.n >= COARSE_MIN_ROWS:
        # Far from any solution a quarter of the rows points the way as well as all of them: every start first
        # runs to the end of its Gauss-Newton phase on every COARSE_STRIDE-th row, then to convergence on all rows.
        sub = model.take(np.arange(0, model.n, COARSE_STRIDE))
        theta0 = _minimise(sub, theta0, delta, coarse=True, max_iter=COARSE_MAX_ITER).theta
    sol = _minimise(model, theta0, delta)
    order = np.argsort(np.where(np.isfinite(sol.f), sol.f, np.inf), kind="stable")
    if not np.isfinite(sol.f[order[0]]):
        raise FitError("the scaling-law fit failed: the objective is not finite at any start")
    cand = _distinct(sol.theta, order, n_polish, tol=1e-6)
    pol = _minimise(model, sol.theta[cand], delta, gtol=GTOL_POLISH, exact_from_start=True, max_iter=200)
    best = int(np.argmin(pol.f))
    f_opt = float(pol.f[best])
    # The absolute floor matters only for (near) noise-free data, where the optimum is ~0.
    at_opt = sol.f <= f_opt * (1 + OPTIMUM_RTOL) + 0.5 * model.n * (1e-6 * delta) ** 2
    theta_opt = pol.theta[best]
    # Converged: the Hessian is positive definite and either the gradient is negligible or a full
    # Newton step would lower the objective by less than DECREMENT_CONVERGED (relative) -- with
    # many parameters and a flat direction the latter is reached first, at float64 resolution.
    f1, g1, h1 = model.evaluate(theta_opt[None], delta, mode=EXACT)
    Hopt = h1[0]
    evals = np.linalg.eigvalsh(Hopt)
    pd_ok = bool(evals[0] > 1e-12 * max(evals[-1], 1e-300))
    decrement = float(0.5 * g1[0] @ np.linalg.solve(Hopt, g1[0])) / max(f_opt, 1e-300) if pd_ok else np.inf
    gmax = float(pol.gmax[best])
    converged = pd_ok and (gmax <= GTOL_CONVERGED or decrement <= DECREMENT_CONVERGED)
    # Other local optima (warm starts for the bootstrap): distinct, converged, every term alive.
    others = [i for i in _distinct(sol.theta, order[sol.converged[order]], 8, tol=1e-3)
              if np.abs(sol.theta[i] - theta_opt).max() > 1e-3
              and model.shares(model.to_raw(sol.theta[i])).max(axis=1).min() >= 1e-6]
    return _MultiStart(
        theta_raw=model.to_raw(theta_opt), objective=f_opt, gmax=gmax, decrement=decrement,
        converged=converged, n_starts=len(starts_raw),
        n_starts_converged=int(sol.converged.sum()), n_starts_at_optimum=int(at_opt.sum()),
        local_optima_raw=model.to_raw(sol.theta[others]) if others else np.empty((0, model.P)),
        n_iter_max=int(sol.n_iter.max()), seconds=time.perf_counter() - t0)


def _bootstrap_weights(n: int, n_boot: int, rng: np.random.Generator, clusters: np.ndarray | None) -> np.ndarray:
    """Row weights of each resample: counts of rows (or of whole clusters) drawn with replacement."""
    if clusters is None:
        idx = rng.integers(0, n, size=(n_boot, n))
        return np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)
    codes, uniq = pd.factorize(pd.Series(clusters), sort=True)
    G = len(uniq)
    idx = rng.integers(0, G, size=(n_boot, G))
    counts = np.stack([np.bincount(row, minlength=G) for row in idx]).astype(float)
    return counts[:, codes]


@_single_threaded
def _bootstrap(model: _Model, ms: _MultiStart, starts_raw: np.ndarray, delta: float, n_boot: int, seed: int,
               clusters: np.ndarray | None, n_local: int = 0, n_grid: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Refit `n_boot` resamples together; returns (raw params (B, P), converged (B,)).

    Each resample starts from the full-data optimum (and `n_local` other local optima of the grid) and from
    `n_grid` random grid starts, which take the coarse first pass like the full fit's grid; the best endpoint
    is the resample's estimate.
    """
    rng = np.random.default_rng(seed)
    W = _bootstrap_weights(model.n, n_boot, rng, clusters)
    warm = np.vstack([ms.theta_raw[None], ms.local_optima_raw[:n_local]])
    m = len(warm) + n_grid
    starts = np.empty((n_boot, m, model.P))
    starts[:, : len(warm)] = warm[None]
    if n_grid:
        starts[:, len(warm):] = starts_raw[rng.integers(0, len(starts_raw), size=(n_boot, n_grid))]
    theta0 = model.to_internal(starts.reshape(-1, model.P))
    weights = np.repeat(W, m, axis=0)
    if n_grid and model.n >= COARSE_MIN_ROWS:
        grid = (np.arange(n_boot * m) % m) >= len(warm)
        rows = np.arange(0, model.n, COARSE_STRIDE)
        theta0[grid] = _minimise(model.take(rows), theta0[grid], delta, weights=weights[grid][:, rows], coarse=True,
                                 max_iter=COARSE_MAX_ITER).theta
    sol = _minimise(model, theta0, delta, weights=weights, groups=np.repeat(np.arange(n_boot), m))
    f = np.where(np.isfinite(sol.f), sol.f, np.inf).reshape(n_boot, m)
    pick = f.argmin(axis=1)
    flat = np.arange(n_boot) * m + pick
    return model.to_raw(sol.theta[flat]), sol.converged[flat]


# =====================================================================================
# Input checks
# =====================================================================================

def _source(df: pd.DataFrame) -> str:
    return str(df.attrs.get("source", "the input table"))


def _check_columns(df: pd.DataFrame, cols: Mapping[str, str], *, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Validate numeric, finite, positive columns (user names); return them as floats."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    source = _source(df)
    schema = tables.Schema(name="scaling_fit_input", columns=tuple(
        tables.Column(name=user, type="float", gt=0.0, description=what) for what, user in cols.items()))
    missing = [u for u in cols.values() if u not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing} needed for the fit; the table has "
                        f"{list(df.columns)}. Pass the matching column-name arguments.")
    keep = list(dict.fromkeys([*cols.values(), *extra]))
    out = tables.validate(df[keep], schema, source=source)
    return out


def _require_spread(values: np.ndarray, column: str, what: str, source: str) -> None:
    if np.unique(values).size < 2:
        raise DataError(f"{source}: column '{column}' has a single distinct value ({values[0]:g}) in all "
                        f"{len(values)} rows; {what} cannot be estimated without at least two distinct values")


def _check_rows(n: int, P: int, source: str) -> None:
    if n < P:
        raise DataError(f"{source}: {n} rows is fewer than the {P} parameters of the law; the fit needs at "
                        f"least {P} rows (and many more for useful intervals)")


def _starts_grid(spec: Mapping[str, Sequence[float]], names: Sequence[str]) -> np.ndarray:
    missing = [p for p in names if p not in spec]
    if missing:
        raise ValueError(f"start grid lacks values for {missing}; it needs {list(names)}")
    return np.array(list(itertools.product(*(np.asarray(spec[p], dtype=float) for p in names))))


def _as_starts(starts, grid_names: Sequence[str], default: Callable[[], np.ndarray], P: int,
               all_names: Sequence[str]) -> np.ndarray:
    """Starting points as an (S, P) raw array; parameters outside `grid_names` start at 0."""
    if isinstance(starts, str):
        base = default() if starts in ("hoffmann", "auto", "default") else None
        if base is None:
            raise ValueError(f"unknown starts {starts!r}: use 'hoffmann'/'auto', a dict of value lists per "
                             f"parameter {list(grid_names)}, or an array of starting points")
    elif isinstance(starts, Mapping):
        base = _starts_grid(starts, grid_names)
    elif isinstance(starts, pd.DataFrame):
        base = starts[list(grid_names)].to_numpy(dtype=float)
    else:
        base = np.atleast_2d(np.asarray(starts, dtype=float))
        if base.shape[1] == P:
            return base
    if base.shape[1] != len(grid_names):
        raise ValueError(f"starting points need {len(grid_names)} columns ({list(grid_names)}), got {base.shape[1]}")
    out = np.zeros((len(base), P))
    out[:, : len(grid_names)] = base
    return out


# =====================================================================================
# Results
# =====================================================================================

def _percentile_interval(draws: pd.DataFrame, names: Sequence[str], alpha: float) -> pd.DataFrame:
    lo, hi = alpha / 2, 1 - alpha / 2
    d = draws
    return pd.DataFrame({"lower": [float(d[p].quantile(lo)) for p in names],
                         "upper": [float(d[p].quantile(hi)) for p in names]}, index=list(names))


@dataclass
class _LawFit:
    """What every scaling-law fit reports (statsmodels-like)."""

    params: pd.Series  # the law's parameters in its published form
    raw_params: pd.Series  # the same in the log-linear parametrisation the optimiser uses
    objective: float  # summed Huber loss of the log residuals at the optimum
    converged: bool  # positive-definite Hessian and a negligible gradient or Newton decrement
    gradient: float  # the optimum's largest standardised gradient, relative to huber_delta * n
    decrement: float  # the objective decrease a further Newton step promises, relative to the objective
    n_obs: int
    huber_delta: float
    n_starts: int
    n_starts_converged: int
    n_starts_at_optimum: int  # starts that ended within OPTIMUM_RTOL of the optimum's objective
    draws: pd.DataFrame | None  # bootstrap draws of params (one row per resample) or None
    n_bootstrap: int
    seed: int
    cluster_bootstrap: bool
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)  # wall seconds of the multi-start fit and of the bootstrap
    _model: Any = field(default=None, repr=False)
    _builder: Any = field(default=None, repr=False)
    _natural: Any = field(default=None, repr=False)

    # -- uncertainty -------------------------------------------------------------------
    def _need_draws(self) -> pd.DataFrame:
        if self.draws is None or not len(self.draws):
            raise FitError("bootstrap intervals are undefined because the fit was run with n_bootstrap=0; "
                           "refit with n_bootstrap > 0 (e.g. 2000)")
        return self.draws

    @property
    def n_draws_converged(self) -> int:
        return 0 if self.draws is None else int(self.draws["converged"].sum())

    @property
    def bse(self) -> pd.Series:
        """Bootstrap standard deviations of the parameters (NaN without a bootstrap)."""
        if self.draws is None or not len(self.draws):
            return pd.Series(np.nan, index=self.params.index, name="bse")
        return self.draws[list(self.params.index)].std(ddof=1).rename("bse")

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Bootstrap percentile intervals (columns lower, upper).

        Every resample counts, including those whose refit stopped short of the convergence
        tolerance (see `notes`): they typically drift toward a boundary where the optimum is at
        infinity (E -> 0, say), and leaving them out would make the intervals too narrow.
        """
        return _percentile_interval(self._need_draws(), list(self.params.index), alpha)

    def params_table(self, alpha: float = 0.05) -> pd.DataFrame:
        """Estimate, bootstrap standard error and percentile interval per parameter."""
        out = pd.DataFrame({"parameter": self.params.index, "estimate": self.params.to_numpy(),
                            "std_err": self.bse.to_numpy()})
        if self.draws is not None and len(self.draws):
            ci = self.conf_int(alpha)
            out["lower"], out["upper"] = ci["lower"].to_numpy(), ci["upper"].to_numpy()
        else:
            out["lower"] = out["upper"] = np.nan
        return out

    # -- prediction ---------------------------------------------------------------------
    def _predict_frame(self, df: pd.DataFrame) -> np.ndarray:
        comps = self._builder(df)
        return np.exp(self._model.predict_log(self.raw_params.to_numpy(), comps, len(df)))

    def residuals(self) -> np.ndarray:
        """Log residuals log L_hat - log L at the data."""
        m = self._model
        return m.predict_log(self.raw_params.to_numpy(), m.components, m.n) - m.y

    def summary(self, alpha: float = 0.05) -> str:
        lines = [f"{type(self).__name__}: {self.law}",
                 f"  rows {self.n_obs}; Huber delta {self.huber_delta:g} on log residuals (summed); "
                 f"objective {self.objective:.10g}",
                 f"  starts {self.n_starts}: {self.n_starts_converged} converged, {self.n_starts_at_optimum} "
                 f"reached the optimum (objective within {OPTIMUM_RTOL:g} relative)",
                 f"  optimum converged: {self.converged} (largest standardised gradient "
                 f"{self.gradient:.2e} x delta x n; a Newton step would gain {self.decrement:.1e} of the objective)"]
        if self.draws is not None:
            kind = "clusters" if self.cluster_bootstrap else "rows"
            lines.append(f"  bootstrap: {self.n_bootstrap} resamples of {kind} (seed {self.seed}), "
                         f"{self.n_draws_converged} converged; {100 * (1 - alpha):g}% percentile intervals")
        table = self.params_table(alpha)
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _finish(fit_cls, model: _Model, ms: _MultiStart, *, builder, natural, delta, n_bootstrap, seed, clusters,
            starts_raw, **extra):
    raw = pd.Series(ms.theta_raw, index=model.names, name="raw")
    params = natural(raw.to_frame().T).iloc[0].rename("params")
    draws = None
    t0 = time.perf_counter()
    if n_bootstrap:
        braw, bconv = _bootstrap(model, ms, starts_raw, delta, int(n_bootstrap), seed, clusters)
        draws = natural(pd.DataFrame(braw, columns=model.names))
        draws.insert(0, "draw", np.arange(len(draws)))
        draws["converged"] = bconv
    notes = []
    shares = model.shares(ms.theta_raw)
    for k, term in enumerate(model.terms):
        top = float(shares[k].max())
        if top < 1e-6:
            notes.append(f"term {term} contributes at most {top:.1e} of the fitted loss at any data point: "
                         f"its parameters are not identified by these data")
    if not ms.converged:
        notes.append("the optimum did not reach the convergence tolerance; treat the estimates with care")
    if draws is not None and (~draws["converged"]).any():
        notes.append(f"{int((~draws['converged']).sum())} of {len(draws)} bootstrap refits stopped short of the "
                     f"convergence tolerance (typically drifting toward a boundary, such as E -> 0, where the "
                     f"resample's optimum is at infinity); they are kept in the intervals at their last iterate")
    return fit_cls(params=params, raw_params=raw, objective=ms.objective, converged=ms.converged,
                   gradient=ms.gmax, decrement=ms.decrement, n_obs=model.n, huber_delta=delta, n_starts=ms.n_starts,
                   n_starts_converged=ms.n_starts_converged, n_starts_at_optimum=ms.n_starts_at_optimum,
                   draws=draws, n_bootstrap=int(n_bootstrap), seed=seed, cluster_bootstrap=clusters is not None,
                   notes=notes, timings={"fit_s": ms.seconds, "bootstrap_s": time.perf_counter() - t0},
                   _model=model, _builder=builder, _natural=natural, **extra)


def _clusters(df: pd.DataFrame, clusters) -> np.ndarray | None:
    if clusters is None:
        return None
    if isinstance(clusters, str):
        if clusters not in df.columns:
            raise DataError(f"{_source(df)}: cluster column '{clusters}' not found; the table has {list(df.columns)}")
        values = df[clusters]
    else:
        values = pd.Series(np.asarray(clusters))
        if len(values) != len(df):
            raise DataError(f"{_source(df)}: clusters has {len(values)} labels for {len(df)} rows")
    if values.isna().any():
        raise DataError(f"{_source(df)}: cluster labels are missing at "
                        f"rows {', '.join(str(i + 1) for i in np.flatnonzero(values.isna().to_numpy())[:5])}")
    return values.to_numpy()


# =====================================================================================
# L(C) = E + (C0 / C)^alpha
# =====================================================================================

POWER_LAW_NAMES = ("e", "a", "alpha")


@dataclass
class PowerLawFit(_LawFit):
    """L(C) = E + (C0 / C)^alpha fitted by `fit_power_law`."""

    x: str = "C"
    y: str = "loss"
    law = "L(C) = E + (C0 / C)^alpha"

    def predict(self, x) -> np.ndarray:
        """Predicted loss at compute values (array-like) or at a DataFrame's `x` column."""
        if isinstance(x, pd.DataFrame):
            x = x[self.x]
        c = np.asarray(x, dtype=float)
        E, C0, alpha = (float(self.params[p]) for p in ("E", "C0", "alpha"))
        return E + (C0 / c) ** alpha

    def compute_for_loss(self, loss) -> pd.DataFrame:
        """Compute needed to reach each loss: C = C0 (L - E)^(-1/alpha).

        Returns columns loss, compute, reachable and note; a loss at or below the irreducible
        term E is never reached, so its compute is NaN and the note says why.
        """
        return _compute_table(np.atleast_1d(np.asarray(loss, dtype=float)), self.params)

    def compute_draws(self, loss) -> np.ndarray:
        """Bootstrap draws of the compute needed for each loss, (n_draws, n_losses); NaN where unreachable."""
        d = self._need_draws()
        target = np.atleast_1d(np.asarray(loss, dtype=float))
        return inverse_power_law(d["E"].to_numpy()[:, None], d["C0"].to_numpy()[:, None],
                                  d["alpha"].to_numpy()[:, None], target[None, :])


def inverse_power_law(E, C0, alpha, target):
    gap = np.asarray(target, dtype=float) - E
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.where(gap > 0, C0 * np.power(np.where(gap > 0, gap, 1.0), -1.0 / alpha), np.nan)


def _compute_table(target: np.ndarray, params: pd.Series) -> pd.DataFrame:
    E, C0, alpha = (float(params[p]) for p in ("E", "C0", "alpha"))
    c = inverse_power_law(E, C0, alpha, target)
    notes = ["" if t > E else f"loss {t:g} is at or below the irreducible loss E = {E:.4g}: no compute reaches it"
             for t in target]
    return pd.DataFrame({"loss": target, "compute": c, "reachable": target > E, "note": notes})


def _power_law_natural(raw: pd.DataFrame) -> pd.DataFrame:
    alpha = raw["alpha"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c0 = np.where(alpha != 0, np.exp(raw["a"].to_numpy(dtype=float) / alpha), np.nan)
    return pd.DataFrame({"E": np.exp(raw["e"].to_numpy(dtype=float)), "C0": c0, "alpha": alpha})


def _power_law_components(c: np.ndarray) -> list[_Component]:
    return [_Component("E", "e"), _Component("(C0/C)^alpha", "a", (("alpha", -np.log(c)),))]


def power_law_default_starts(df: pd.DataFrame | None = None, *, y: str = "loss", x: str = "C") -> np.ndarray:
    """The default start grid of `fit_power_law`, raw (e, a, alpha), scaled to the data.

    E starts at fractions of the smallest loss; the reducible term at the data's central compute
    starts at fractions of the typical loss; alpha spans 0.02 to 2. 5 x 5 x 8 = 200 starts.
    """
    if df is None:
        lmin, lmid, cmid = 2.0, 3.0, 0.0
    else:
        loss = df[y].to_numpy(dtype=float)
        lmin, lmid, cmid = float(loss.min()), float(np.exp(np.log(loss).mean())), float(np.log(df[x]).mean())
    e = np.log(lmin * np.array([0.05, 0.3, 0.6, 0.85, 0.97]))
    r = np.log(lmid * np.array([0.02, 0.1, 0.3, 0.6, 1.2]))
    alpha = np.array([0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0])
    grid = np.array(list(itertools.product(e, r, alpha)))
    # The reducible term at compute C is exp(a - alpha log C); at the central compute it is exp(r).
    grid[:, 1] = grid[:, 1] + grid[:, 2] * cmid
    return grid


def power_law_starts_near(fit: PowerLawFit, n_random: int = 0, seed: int = 0) -> np.ndarray:
    """Warm starts for refitting similar data (a bootstrap resample): the fit's optimum and the
    other distinct local optima its grid found, raw (e, a, alpha)."""
    pts = [fit.raw_params.to_numpy()]
    extra = getattr(fit, "_local_optima", None)
    if extra is not None and len(extra):
        pts += list(extra[:2])
    out = np.vstack(pts)
    if n_random:
        grid = power_law_default_starts()
        out = np.vstack([out, grid[np.random.default_rng(seed).integers(0, len(grid), n_random)]])
    return out


def fit_power_law(df: pd.DataFrame, *, x: str = "C", y: str = "loss", huber_delta: float = DEFAULT_HUBER_DELTA,
                  starts="auto", n_bootstrap: int = 0, seed: int = 0, clusters=None) -> PowerLawFit:
    """Fit L(C) = E + (C0 / C)^alpha by summed Huber loss of log residuals from many starts.

    Parameters
    ----------
    df : table with a compute column `x` and a loss column `y` (both positive and finite).
    huber_delta : Huber threshold on the log residuals.
    starts : "auto" (`power_law_default_starts`, 200 starts scaled to the data), a dict of value
        lists for the raw parameters e, a, alpha (a = alpha log C0; their product grid), or an
        array of raw (e, a, alpha) rows, e.g. `power_law_starts_near(previous_fit)`.
    n_bootstrap, seed : bootstrap resamples for `bse`, `conf_int` and `draws` (0: none).
    clusters : None to resample rows, or a column name / array of labels to resample whole
        clusters (e.g. training runs: points along one run are not independent).
    """
    data = _check_columns(df, {"compute": x, "loss": y})
    source = _source(df)
    _check_rows(len(data), 3, source)
    c, loss = data[x].to_numpy(), data[y].to_numpy()
    _require_spread(c, x, "the exponent alpha", source)
    model = _Model(_power_law_components(c), np.log(loss))
    starts_raw = _as_starts(starts, POWER_LAW_NAMES, lambda: power_law_default_starts(data, y=y, x=x), 3,
                            POWER_LAW_NAMES)
    ms = _multistart(model, starts_raw, huber_delta)
    builder = lambda frame: _power_law_components(np.asarray(frame[x], dtype=float))  # noqa: E731
    fit = _finish(PowerLawFit, model, ms, builder=builder, natural=_power_law_natural, delta=huber_delta,
                  n_bootstrap=n_bootstrap, seed=seed, clusters=_clusters(df, clusters), starts_raw=starts_raw,
                  x=x, y=y)
    fit._local_optima = ms.local_optima_raw
    if fit.params["alpha"] <= 0:
        fit.notes.append("the fitted exponent is not positive: the loss does not fall with compute in these data")
    return fit


def compute_ratio(fit_a: PowerLawFit, fit_b: PowerLawFit, loss, alpha: float = 0.05) -> pd.DataFrame:
    """C_a(L) / C_b(L), the compute fit a needs over what fit b needs, with a percentile interval.

    The two fits' bootstrap draws are paired by index, valid when they come from independent data
    (separate runs per method). `share_defined` is the share of draws where both reach the loss.
    """
    target = np.atleast_1d(np.asarray(loss, dtype=float))
    ca, cb = fit_a.compute_draws(target), fit_b.compute_draws(target)
    k = min(len(ca), len(cb))
    ratio = ca[:k] / cb[:k]
    est = fit_a.compute_for_loss(target)["compute"].to_numpy() / fit_b.compute_for_loss(target)["compute"].to_numpy()
    rows = []
    for j, t in enumerate(target):
        ok = np.isfinite(ratio[:, j])
        rows.append({"loss": t, "ratio": est[j],
                     "lower": float(np.quantile(ratio[ok, j], alpha / 2)) if ok.any() else np.nan,
                     "upper": float(np.quantile(ratio[ok, j], 1 - alpha / 2)) if ok.any() else np.nan,
                     "share_defined": float(ok.mean())})
    return pd.DataFrame(rows)


# =====================================================================================
# L(N, D) = E + A / N^alpha + B / D^beta, with covariates
# =====================================================================================

CHINCHILLA_NAMES = ("e", "a", "b", "alpha", "beta")


@dataclass(frozen=True)
class _Covariate:
    column: str
    term: str  # "E", "A" or "B"
    level: str | None  # None: numeric (enters as log value); else the categorical level it indicates

    @property
    def raw_name(self) -> str:
        return f"gamma_{self.term}[{self.column}]" if self.level is None else \
            f"log {self.term}[{self.column}={self.level}]"

    @property
    def name(self) -> str:
        return f"gamma_{self.term}[{self.column}]" if self.level is None else f"{self.term}[{self.column}={self.level}]"

    def column_values(self, frame: pd.DataFrame) -> np.ndarray:
        v = frame[self.column]
        if self.level is None:
            return np.log(np.asarray(v, dtype=float))
        return (v.astype(str).to_numpy() == self.level).astype(float)


def _covariate_terms(df: pd.DataFrame, covariates, source: str) -> list[_Covariate]:
    if not covariates:
        return []
    out = []
    for col, terms in dict(covariates).items():
        terms = [terms] if isinstance(terms, str) else list(terms)
        bad = [t for t in terms if t not in ("E", "A", "B")]
        if bad or not terms:
            raise ValueError(f"covariate '{col}' must scale some of the terms 'E', 'A', 'B'; got {terms}")
        if col not in df.columns:
            raise DataError(f"{source}: covariate column '{col}' not found; the table has {list(df.columns)}")
        v = df[col]
        if v.isna().any():
            rows = np.flatnonzero(v.isna().to_numpy()) + 1
            raise DataError(f"{source}: covariate column '{col}' has empty values at rows "
                            f"{', '.join(map(str, rows[:5]))}")
        if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
            x = v.to_numpy(dtype=float)
            bad_rows = np.flatnonzero(~np.isfinite(x) | (x <= 0)) + 1
            if bad_rows.size:
                raise DataError(f"{source}: numeric covariate '{col}' enters the law as {col}^gamma and must be "
                                f"positive and finite; rows {', '.join(map(str, bad_rows[:5]))} are not")
            _require_spread(x, col, f"its exponent gamma", source)
            out += [_Covariate(col, t, None) for t in terms]
        else:
            levels = sorted(v.astype(str).unique())
            if len(levels) < 2:
                raise DataError(f"{source}: categorical covariate '{col}' has a single level ({levels[0]}); "
                                f"its effect cannot be estimated")
            out += [_Covariate(col, t, lev) for t in terms for lev in levels[1:]]
    return out


def _chinchilla_components(n: np.ndarray, d: np.ndarray, covs: Sequence[_Covariate], frame: pd.DataFrame
                           ) -> list[_Component]:
    extra = {t: tuple((c.raw_name, c.column_values(frame)) for c in covs if c.term == t) for t in "EAB"}
    return [_Component("A", "a", (("alpha", -np.log(n)),) + extra["A"]),
            _Component("B", "b", (("beta", -np.log(d)),) + extra["B"]),
            _Component("E", "e", extra["E"])]


def _chinchilla_natural(covs: Sequence[_Covariate]):
    def natural(raw: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({"E": np.exp(raw["e"].to_numpy(dtype=float)),
                            "A": np.exp(raw["a"].to_numpy(dtype=float)),
                            "B": np.exp(raw["b"].to_numpy(dtype=float)),
                            "alpha": raw["alpha"].to_numpy(dtype=float),
                            "beta": raw["beta"].to_numpy(dtype=float)})
        for c in covs:
            v = raw[c.raw_name].to_numpy(dtype=float)
            out[c.name] = v if c.level is None else np.exp(v)
        return out
    return natural


def scale_terms(E, A, B, covariates, coef, values):
    """Multiply the law's terms E, A, B by each covariate's factor.

    A numeric covariate contributes value^coef, a level of a text covariate contributes coef where
    the value equals the level (1 elsewhere). `coef(c)` gives the coefficient column(s) of covariate
    `c` (draws x 1) and `values(c)` its values (1 x rows); arrays broadcast.
    """
    terms = {"E": E, "A": A, "B": B}
    for c in covariates:
        k, v = coef(c), values(c)
        if c.level is None:
            fac = np.exp(k * np.log(np.asarray(v, dtype=float)))
        else:
            fac = np.where(np.asarray(v).astype(str) == c.level, k, 1.0)
        terms[c.term] = terms[c.term] * fac
    return terms["E"], terms["A"], terms["B"]


@dataclass
class ChinchillaFit(_LawFit):
    """L(N, D) = E + A / N^alpha + B / D^beta (optionally with covariates) fitted by `fit_chinchilla`."""

    n: str = "N"
    d: str = "D"
    loss: str = "loss"
    covariates: tuple = ()

    @property
    def law(self) -> str:
        """The fitted law as a formula (numeric covariates as powers, categorical ones as ratios r_term)."""
        factors = {t: "" for t in "EAB"}
        baselines = {}
        for c in self.covariates:
            if c.level is None:
                factors[c.term] += f" {c.column}^{c.name}"
            elif f"r_{c.term}({c.column})" not in factors[c.term]:
                factors[c.term] += f" r_{c.term}({c.column})"
                baselines[c.column] = c
        cols = list(dict.fromkeys(c.column for c in self.covariates))
        head = f"L(N, D{''.join(', ' + c for c in cols)})"
        text = f"{head} = E{factors['E']} + A{factors['A']} / N^alpha + B{factors['B']} / D^beta"
        if baselines:
            text += " (r: the fitted ratio for a level, 1 for the first level)"
        return text

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted loss for a table with the fit's N, D (and covariate) columns."""
        return self._predict_frame(df)

    def term_values(self, df: pd.DataFrame) -> pd.DataFrame:
        """E, A and B in effect at each row of `df` (they differ only through covariates)."""
        p = self.params
        out = pd.DataFrame({"E": np.full(len(df), p["E"]), "A": np.full(len(df), p["A"]),
                            "B": np.full(len(df), p["B"])}, index=df.index)
        for c in self.covariates:
            if c.level is None:
                out[c.term] *= np.asarray(df[c.column], dtype=float) ** p[c.name]
            else:
                out[c.term] *= np.where(df[c.column].astype(str) == c.level, p[c.name], 1.0)
        return out

    def allocation(self, alpha: float = 0.05) -> pd.DataFrame:
        """Compute-optimal scaling exponents N_opt ~ C^a, D_opt ~ C^b with a = beta / (alpha + beta)
        and b = alpha / (alpha + beta), with bootstrap percentile intervals (NaN without a bootstrap)."""
        def ab(al, be):
            s = np.asarray(al) + np.asarray(be)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.asarray(be) / s, np.asarray(al) / s
        a, b = ab(self.params["alpha"], self.params["beta"])
        out = pd.DataFrame({"quantity": ["a (N_opt ~ C^a)", "b (D_opt ~ C^b)"], "estimate": [float(a), float(b)],
                            "lower": np.nan, "upper": np.nan})
        if self.draws is not None and len(self.draws):
            d = self.draws
            da, db = ab(d["alpha"].to_numpy(), d["beta"].to_numpy())
            for i, v in enumerate((da, db)):
                v = v[np.isfinite(v)]
                out.loc[i, ["lower", "upper"]] = np.quantile(v, [alpha / 2, 1 - alpha / 2])
        return out

    def compute_optimal(self, compute, covariates: Mapping[str, Any] | None = None, *, flops_per_token: float = 6.0,
                        alpha: float = 0.05) -> pd.DataFrame:
        """N_opt, D_opt and the loss they reach for compute budgets C = 6 N D (FLOPs), with intervals.

        Minimising E + A/N^alpha + B/D^beta subject to C = 6 N D gives
        N_opt = G (C/6)^a, D_opt = (C/6)^b / G with G = (alpha A / (beta B))^(1/(alpha+beta)).
        `covariates` fixes covariate values (e.g. {"T_m": 4}) where A, B or E depend on them.
        """
        C = np.atleast_1d(np.asarray(compute, dtype=float))
        frame = pd.DataFrame({k: [v] for k, v in (covariates or {}).items()})
        missing = sorted({c.column for c in self.covariates} - set(frame.columns))
        if missing:
            raise ValueError(f"compute_optimal needs values for the covariate(s) {missing}")

        def solve(par: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            E, A, B = scale_terms(
                par["E"].to_numpy()[:, None], par["A"].to_numpy()[:, None], par["B"].to_numpy()[:, None],
                self.covariates, lambda c: par[c.name].to_numpy()[:, None],
                lambda c: np.asarray([[frame[c.column].iloc[0]]]))
            al, be = par["alpha"].to_numpy()[:, None], par["beta"].to_numpy()[:, None]
            with np.errstate(all="ignore"):
                G = (al * A / (be * B)) ** (1 / (al + be))
                x = C[None, :] / flops_per_token
                n_opt = G * x ** (be / (al + be))
                d_opt = x ** (al / (al + be)) / G
                l_opt = E + A / n_opt ** al + B / d_opt ** be
            return n_opt, d_opt, l_opt

        est = solve(self.params.to_frame().T)
        out = pd.DataFrame({"compute": C, "N_opt": est[0][0], "D_opt": est[1][0], "loss_opt": est[2][0]})
        if self.draws is not None and len(self.draws):
            boot = solve(self.draws)
            for name, v in zip(("N_opt", "D_opt", "loss_opt"), boot):
                out[name + "_lower"] = np.nanquantile(v, alpha / 2, axis=0)
                out[name + "_upper"] = np.nanquantile(v, 1 - alpha / 2, axis=0)
        return out


#: The Besiroglu et al. (2024) refit of Chinchilla Approach 3 (their Table 1).
BESIROGLU_2024 = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}


def simulate_chinchilla(n: int = 240, *, seed: int = 0, params: Mapping[str, float] = BESIROGLU_2024,
                        noise_sd: float = 0.01, n_range=(4e7, 1.6e10), tokens_per_param=(1.0, 100.0)) -> pd.DataFrame:
    """Synthetic (N, D, loss) points from a known Chinchilla law, for tests and benchmarks.

    N is log-uniform over `n_range`, D = N times a log-uniform tokens-per-parameter ratio, and the
    loss is the law times exp(noise), noise ~ Normal(0, noise_sd) (noise on the log scale, the
    scale the fit works on).
    """
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(n_range[0]), np.log(n_range[1]), n))
    D = N * np.exp(rng.uniform(np.log(tokens_per_param[0]), np.log(tokens_per_param[1]), n))
    L = params["E"] + params["A"] / N ** params["alpha"] + params["B"] / D ** params["beta"]
    return pd.DataFrame({"N": N, "D": D, "loss": L * np.exp(rng.normal(0.0, noise_sd, n))})


def hoffmann_starts(every: int = 1) -> np.ndarray:
    """The 4500 published starting points as raw (e, a, b, alpha, beta) rows (every `every`-th, for quick runs)."""
    return _starts_grid(HOFFMANN_GRID, CHINCHILLA_NAMES)[:: max(1, int(every))]


def fit_chinchilla(df: pd.DataFrame, *, n: str = "N", d: str = "D", loss: str = "loss",
                   huber_delta: float = DEFAULT_HUBER_DELTA, starts="hoffmann", n_bootstrap: int = 0, seed: int = 0,
                   covariates: Mapping[str, Sequence[str] | str] | None = None, clusters=None) -> ChinchillaFit:
    """Chinchilla Approach 3: fit L(N, D) = E + A / N^alpha + B / D^beta.

    The law is fitted as log L_hat = LSE(a - alpha log N, b - beta log D, e) with E = e^e,
    A = e^a, B = e^b, by the Huber loss (threshold `huber_delta`) of the log residuals summed over
    rows, from every start of `starts` at once.

    Parameters
    ----------
    df : table with columns `n` (parameters), `d` (training tokens) and `loss`, all positive and finite.
    starts : "hoffmann" (the published 4500-point grid: e in {-1, -0.5, ..., 1}, a and b in
        {0, 5, ..., 25}, alpha and beta in {0, 0.5, ..., 2}), a dict of value lists for
        e, a, b, alpha, beta (their product grid) or an array of such rows. Covariate parameters
        start at 0 (no effect).
    covariates : a third factor, fitted jointly, as {column: terms}, terms among "E", "A", "B".
        A numeric column T (positive) multiplies each listed term by T^gamma, e.g.
        ``{"T_m": ["E", "A"]}`` fits L = E T^gE + A T^gA / N^alpha + B / D^beta with parameters
        ``gamma_E[T_m]`` and ``gamma_A[T_m]``; E, A and B are then their values at T = 1. This is a
        further linear term (gamma log T) inside the listed components of the LSE. A categorical
        column multiplies the terms by a fitted ratio per level relative to its first level
        (sorted), named like ``A[dataset=rpj]``.
    n_bootstrap, seed : bootstrap resamples (rows, or whole `clusters`) for intervals; 0 for none.
    clusters : None, or a column name / array of labels whose groups are resampled whole.

    Returns a `ChinchillaFit`; bad input raises `DataError` naming the column and rows.
    """
    cols = {"parameters N": n, "tokens D": d, "loss": loss}
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    source = _source(df)
    cov_cols = list(dict(covariates or {}).keys())
    data = _check_columns(df, cols, extra=cov_cols)
    covs = _covariate_terms(data, covariates, source)
    P = 5 + len(covs)
    _check_rows(len(data), P, source)
    N, D, L = data[n].to_numpy(), data[d].to_numpy(), data[loss].to_numpy()
    _require_spread(N, n, "the exponent alpha of N", source)
    _require_spread(D, d, "the exponent beta of D", source)
    model = _Model(_chinchilla_components(N, D, covs, data), np.log(L))
    # Order the internal parameters as the raw starts are laid out: e, a, b, alpha, beta, covariates.
    starts_raw_base = _as_starts(starts, CHINCHILLA_NAMES, hoffmann_starts, P, model.names)
    names_std = list(CHINCHILLA_NAMES) + [c.raw_name for c in covs]
    perm = [names_std.index(p) for p in model.names]
    starts_raw = starts_raw_base[:, perm]
    ms = _multistart(model, starts_raw, huber_delta)

    def builder(frame: pd.DataFrame) -> list[_Component]:
        return _chinchilla_components(np.asarray(frame[n], dtype=float), np.asarray(frame[d], dtype=float),
                                      covs, frame)

    fit = _finish(ChinchillaFit, model, ms, builder=builder, natural=_chinchilla_natural(covs), delta=huber_delta,
                  n_bootstrap=n_bootstrap, seed=seed, clusters=_clusters(df, clusters), starts_raw=starts_raw,
                  n=n, d=d, loss=loss, covariates=tuple(covs))
    return fit
