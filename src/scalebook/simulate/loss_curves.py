"""Simulated loss curves for the seed 002 chapter: 3 values of a third factor T_m x 5 model sizes.

Ground truth. Fifteen training runs, T_m in {2, 4, 8} x N in {53M, 134M, 374M, 778M, 1.36B} parameters, each
evaluated every 0.25B tokens from 0 to 20B (81 checkpoints). The expected total loss (nats/token) at D tokens is

    L(N, D, T_m) = E T_m^gE + A T_m^gA / N^alpha + B / (D + D0)^beta

    E = 1.25, gE = -0.01, A = 456, gA = -0.20, alpha = 0.30, B = 430, beta = 0.30, D0 = 4e5 tokens.

For D >= 1e9 tokens the offset D0 changes the loss by less than 0.01 %, so beyond the first checkpoints the curves
follow the Chinchilla form with T_m as a covariate of E and A (gamma_B = 0): the law the chapter fits (on tokens >=
1B by default). D0 only sets the starting loss, L(N, 0, T_m) = 10.7 to 12.1 (near 12, as in the seed). The parameters were chosen so that the final
losses (20B tokens) match the seed's readings within 0.14 (from 3.47 at T_m = 2, N = 53M to 2.10 at T_m = 8,
N = 1.36B); with alpha fixed at 0.30 and B / (20e9)^beta = 0.35 they are a least-squares fit to those readings.

Noise. The observed loss is L times exp(eps), eps an AR(1) process along each run (lag-one correlation 0.8,
marginal sd 0.0067, innovation sd 0.004): checkpoints of one run are dependent, so intervals should resample runs.
One deliberate anomaly, as in the seed: the run T_m = 2, N = 53M has a loss spike at 5B tokens (+0.15, and +0.05
at the next checkpoint), which a Huber fit should shrug off.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

TRUTH = {"E": 1.25, "gamma_E": -0.01, "A": 456.0, "gamma_A": -0.20, "alpha": 0.30, "B": 430.0, "beta": 0.30,
         "D0": 4e5}
T_M = (2.0, 4.0, 8.0)
SIZES = {"53M": 53e6, "134M": 134e6, "374M": 374e6, "778M": 778e6, "1.36B": 1.36e9}
TOKENS = np.arange(0, 81) * 0.25e9
NOISE_RHO = 0.8
NOISE_INNOVATION_SD = 0.004
SPIKE = {"T_m": 2.0, "size": "53M", "tokens": 5e9, "height": (0.15, 0.05)}


def expected_loss(N, D, T_m, truth: dict = TRUTH) -> np.ndarray:
    """The ground-truth expected loss L(N, D, T_m)."""
    N, D, T_m = (np.asarray(v, dtype=float) for v in (N, D, T_m))
    return (truth["E"] * T_m ** truth["gamma_E"] + truth["A"] * T_m ** truth["gamma_A"] / N ** truth["alpha"]
            + truth["B"] / (D + truth["D0"]) ** truth["beta"])


def generate(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(TOKENS)
    marginal = NOISE_INNOVATION_SD / np.sqrt(1 - NOISE_RHO ** 2)
    frames = []
    for t_m in T_M:
        for label, size in SIZES.items():
            eps = np.empty(n)
            eps[0] = rng.normal(0.0, marginal)
            innov = rng.normal(0.0, NOISE_INNOVATION_SD, n)
            for i in range(1, n):
                eps[i] = NOISE_RHO * eps[i - 1] + innov[i]
            loss = expected_loss(size, TOKENS, t_m) * np.exp(eps)
            if t_m == SPIKE["T_m"] and label == SPIKE["size"]:
                at = int(np.flatnonzero(TOKENS == SPIKE["tokens"])[0])
                loss[at] += SPIKE["height"][0]
                loss[at + 1] += SPIKE["height"][1]
            frames.append(pd.DataFrame({"run": f"T{t_m:g}-N{label}", "T_m": t_m, "N": size, "tokens": TOKENS,
                                        "loss": np.round(loss, 6)}))
    return pd.concat(frames, ignore_index=True)
