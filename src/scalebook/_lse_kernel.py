"""The compiled inner loop of the scaling-law fits: objective, gradient and curvature of the summed Huber loss.

A law is log L_hat = log sum_k exp(z_k), z_k = sum_j theta[idx[k, j]] * x[k, j, :] (term k's parameters and its
standardised columns; a constant term has one parameter and a column of ones). For each start (one row of
`theta`) the kernel computes, in double precision,

    f  = sum_i w_i rho(r_i),            r_i = log L_hat_i - y_i, rho the Huber loss with threshold delta
    g  = sum_i w_i psi(r_i) J_i,        J_i = d log L_hat_i / d theta = sum_k s_ik x_ik (s_ik: term k's share)
    H  = sum_i w_i (psi_i / r_i) J_i J_i'                                   (Gauss-Newton, IRLS weights)
      or sum_i w_i [1{|r_i| <= delta} J_i J_i' + psi_i (sum_k s_ik x_ik x_ik' - J_i J_i')]   (exact Hessian)

Why compiled: numpy spends its time writing and re-reading (start x row) temporaries; here each start's rows
stay in a few short buffers, the row loops are vectorised, and starts run in parallel on every core. A start's
sums are computed by one thread in one order, so results do not depend on the number of threads; the
reductions are reassociated for vector units (``fastmath`` reassoc/contract only: no finite-math or
approximate-function assumptions), so they may differ from a plain loop in the last bits.
The compiled code is cached beside this file (numba ``cache=True``): only the first call after install compiles.
"""
from __future__ import annotations

import numba
import numpy as np

_FASTMATH = {"reassoc", "contract"}


@numba.njit(nogil=True, cache=True)
def _shifted_terms(th, idx, width, x, e, tot, shift):  # pragma: no cover - compiled
    """Rows where the unshifted sum of terms over- or underflowed: terms taken relative to the largest."""
    K, W, n = x.shape
    for i in range(n):
        if tot[i] > 0.0 and tot[i] < np.inf:
            continue
        top = -np.inf
        for k in range(K):
            acc = 0.0
            for j in range(width[k]):
                acc += th[idx[k, j]] * x[k, j, i]
            e[k, i] = acc
            top = max(top, acc)
        tot[i] = 0.0
        for k in range(K):
            e[k, i] = np.exp(e[k, i] - top)
            tot[i] += e[k, i]
        shift[i] = top


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=_FASTMATH)
def huber_lse(theta, idx, width, const, x, y, weights, delta, exact, hessian, f, g, H):  # pragma: no cover
    S, P = theta.shape
    K, W, n = x.shape
    weighted = weights.shape[0] > 0
    for s in numba.prange(S):
        w = weights[s] if weighted else np.ones(n)
        e = np.empty((K, n))  # each term's value, then its share of L_hat
        tot = np.zeros(n)
        # Terms are summed without shifting by the largest (a constant term's exp is then taken once per
        # start); rows that over- or underflow are redone shifted.
        for k in range(K):
            ek = e[k]
            if const[k]:
                ek[:] = np.exp(theta[s, idx[k, 0]])
            else:
                t0 = theta[s, idx[k, 0]]
                for i in range(n):
                    ek[i] = t0 * x[k, 0, i]
                for j in range(1, width[k]):
                    tj = theta[s, idx[k, j]]
                    for i in range(n):
                        ek[i] += tj * x[k, j, i]
                for i in range(n):
                    ek[i] = np.exp(ek[i])
            for i in range(n):
                tot[i] += ek[i]
        shift = np.zeros(n)
        for i in range(n):
            if not (tot[i] > 0.0 and tot[i] < np.inf):
                _shifted_terms(theta[s], idx, width, x, e, tot, shift)
                break
        r = np.empty(n)
        pw = np.empty(n)  # w_i psi(r_i)
        fs = 0.0
        for i in range(n):
            ri = shift[i] + np.log(tot[i]) - y[i]
            psi = min(max(ri, -delta), delta)
            pw[i] = w[i] * psi
            fs += pw[i] * (ri - 0.5 * psi)
            r[i] = ri
        f[s] = fs
        J = np.zeros((P, n))
        for k in range(K):
            ek = e[k]
            for i in range(n):
                ek[i] /= tot[i]
            for j in range(width[k]):
                Jp = J[idx[k, j]]
                for i in range(n):
                    Jp[i] += ek[i] * x[k, j, i]
        for p in range(P):
            acc = 0.0
            for i in range(n):
                acc += pw[i] * J[p, i]
            g[s, p] = acc
        if not hessian:
            continue
        c = np.empty(n)
        if exact[s]:
            for i in range(n):
                c[i] = (w[i] if abs(r[i]) <= delta else 0.0) - pw[i]
        else:
            for i in range(n):
                c[i] = w[i] * delta / max(abs(r[i]), delta)
        for p in range(P):
            for q in range(p + 1):
                acc = 0.0
                for i in range(n):
                    acc += c[i] * J[p, i] * J[q, i]
                H[s, p, q] = acc
        if exact[s]:
            for k in range(K):
                ek = e[k]
                for j in range(width[k]):
                    p = idx[k, j]
                    for l in range(width[k]):
                        q = idx[k, l]
                        if q <= p:
                            acc = 0.0
                            for i in range(n):
                                acc += pw[i] * ek[i] * x[k, j, i] * x[k, l, i]
                            H[s, p, q] += acc
        for p in range(P):
            for q in range(p):
                H[s, q, p] = H[s, p, q]
