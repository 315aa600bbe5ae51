"""Simulated training runs for the loss-versus-compute chapter (seed 003).

Ground truth. Two attention methods, "MoBA" and "Full attention", each with ten training
runs. The compute-optimal frontier of each method is an exact power law with an irreducible
term, L*(C) = E + (C0 / C)^alpha, C in PFLOP/s-days (1 PFLOP/s-day = 8.64e19 FLOP):

    MoBA            E = 0.10, alpha = 0.150, C0 = 1.7^(1/0.150)   (L* = 2.50 / 1.80 / 1.30 at C = 0.1 / 1 / 10)
    Full attention  E = 0.12, alpha = 0.145, C0 chosen so that L*(0.1) = 2.40

Run i touches the frontier at its optimal compute C_i (ten values log-spaced from 0.03 to
12 PFLOP/s-days, the same for both methods). Before C_i the run is under-trained:
L = E + (C0/C)^alpha * (1 + kappa * ln(C/C_i)^2) with kappa = 0.02, which starts above 6 at
C_i/100; after C_i it keeps improving with a third of the frontier's slope. Each run is
observed at 36 log-spaced compute values from C_i/100 to 2 C_i, with multiplicative noise:
an AR(1) process on log loss (sd 0.008, lag-one correlation 0.6), seeded.
Model sizes are reported as N = sqrt(C_i * 8.64e19 / 120) (Chinchilla's 20 tokens per parameter).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

FLOP_PER_PFLOPS_DAY = 8.64e19
METHODS = {
    "MoBA": {"E": 0.10, "alpha": 0.150, "C0": 1.7 ** (1 / 0.150)},
    "Full attention": {"E": 0.12, "alpha": 0.145, "C0": 0.1 * 2.28 ** (1 / 0.145)},
}
RUN_OPTIMA = np.geomspace(0.03, 12.0, 10)
KAPPA = 0.02
START_FRACTION, END_MULTIPLE = 1 / 100, 2.0
POINTS_PER_RUN = 36
NOISE_SD = 0.008
NOISE_RHO = 0.6


def frontier(method: str, compute) -> np.ndarray:
    """The ground-truth compute-optimal loss of a method."""
    g = METHODS[method]
    return g["E"] + (g["C0"] / np.asarray(compute, dtype=float)) ** g["alpha"]


def run_curve(method: str, c_opt: float, compute) -> np.ndarray:
    g = METHODS[method]
    c = np.asarray(compute, dtype=float)
    u = np.log(c / c_opt)
    before = (g["C0"] / c) ** g["alpha"] * (1 + KAPPA * u ** 2)
    after = (g["C0"] / c_opt) ** g["alpha"] * np.exp(-g["alpha"] / 3 * u)
    return g["E"] + np.where(u <= 0, before, after)


def generate(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for method in METHODS:
        for i, c_opt in enumerate(RUN_OPTIMA, start=1):
            compute = np.geomspace(c_opt * START_FRACTION, END_MULTIPLE * c_opt, POINTS_PER_RUN)
            eps = np.empty(POINTS_PER_RUN)
            eps[0] = rng.normal(0, NOISE_SD)
            innov = rng.normal(0, NOISE_SD * np.sqrt(1 - NOISE_RHO ** 2), POINTS_PER_RUN)
            for t in range(1, POINTS_PER_RUN):
                eps[t] = NOISE_RHO * eps[t - 1] + innov[t]
            loss = run_curve(method, c_opt, compute) * np.exp(eps)
            n_params = np.sqrt(c_opt * FLOP_PER_PFLOPS_DAY / 120)
            for c, l in zip(compute, loss):
                rows.append({"method": method, "run": f"{method.split()[0].lower()}-{i:02d}",
                             "n_params": float(f"{n_params:.3g}"), "compute": c, "loss": l})
    return pd.DataFrame(rows)
