"""Benchmark: the Chinchilla Approach-3 fit (`scalebook.scaling.fit_chinchilla`) against a per-start scipy loop.

Goal (issue 3), on 240 points simulated from the Besiroglu et al. (2024) refit (E 1.82, A 482, B 2085,
alpha 0.348, beta 0.366; log-noise sd 0.01; N from 4e7 to 1.6e10; seeded):
  * the full 4500-start Hoffmann-grid fit in at most 1 s wall,
  * at least 30x faster than a per-start scipy loop over the same grid, run in the same process,
  * with an objective no worse than the loop's best,
  * a 4000-resample bootstrap in at most 10 s.
The loop is the common practice done well: for each start, `scipy.optimize.minimize(method="BFGS")` with the exact
gradient on the *summed* Huber objective (written here independently with scipy.special.huber and logsumexp).

Run: `python benchmarks/bench_fit.py` (about 1.5 minutes, most of it the scipy loop). `--loop-starts 500` times the
loop on an evenly spaced subset of the grid and scales its time to 4500 starts (labelled as an estimate).
A benchmark, not a test: the machine it runs on decides the numbers.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from scalebook import scaling

GOAL_FIT_S = 1.0
GOAL_SPEEDUP = 30.0
GOAL_BOOT_S = 10.0
DELTA = 1e-3


def scipy_loop(df, starts: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Best objective, its parameters (e, a, b, alpha, beta) and the wall time of the per-start loop."""
    lN, lD, lL = np.log(df["N"].to_numpy()), np.log(df["D"].to_numpy()), np.log(df["loss"].to_numpy())
    ones = np.ones_like(lN)

    def fun(p):
        e, a, b, alpha, beta = p
        z = np.stack([a - alpha * lN, b - beta * lD, e * ones])
        lse = logsumexp(z, axis=0)
        r = lse - lL
        w = np.exp(z - lse)
        psi = np.clip(r, -DELTA, DELTA)
        grad = np.array([(psi * w[2]).sum(), (psi * w[0]).sum(), (psi * w[1]).sum(),
                         -(psi * w[0] * lN).sum(), -(psi * w[1] * lD).sum()])
        return huber(DELTA, r).sum(), grad

    t0 = time.perf_counter()
    best_f, best_x = np.inf, None
    for x0 in starts:
        res = minimize(fun, x0, jac=True, method="BFGS")
        if res.fun < best_f:
            best_f, best_x = float(res.fun), res.x
    return best_f, best_x, time.perf_counter() - t0


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="seed of the simulated points")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of the engine fit (the median is judged)")
    ap.add_argument("--n-boot", type=int, default=4000, help="bootstrap resamples")
    ap.add_argument("--loop-starts", type=int, default=4500,
                    help="grid starts the scipy loop runs (fewer: its time is scaled to 4500 and marked estimated)")
    args = ap.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    df = scaling.simulate_chinchilla(240, seed=args.seed)
    truth = scaling.BESIROGLU_2024
    grid = scaling.hoffmann_starts()
    print(f"data: 240 points from the Besiroglu et al. (2024) refit {truth}, log-noise sd 0.01, seed {args.seed}")

    # The kernel is compiled on the first call after install and loaded from numba's on-disk cache in every later
    # process; that one-off cost is reported, not hidden, and kept out of the judged median.
    t0 = time.perf_counter()
    scaling.fit_chinchilla(df)
    print(f"first fit in this process (loads the compiled kernel, or compiles it on a first run): "
          f"{time.perf_counter() - t0:.3f} s; kernel threads: {numba.get_num_threads()}")
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fit = scaling.fit_chinchilla(df)
        times.append(time.perf_counter() - t0)
    t_fit = float(np.median(times))
    print(f"\nengine, {len(grid)} starts together: wall {', '.join(f'{t:.3f}' for t in times)} s "
          f"(median {t_fit:.3f} s); objective {fit.objective:.12g}; converged {fit.converged}; "
          f"{fit.n_starts_at_optimum} of {fit.n_starts} starts reached the optimum")

    # The loop below runs on one core; the engine's per-core speed is shown beside its wall time on all cores.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    t0 = time.perf_counter()
    scaling.fit_chinchilla(df)
    t_one = time.perf_counter() - t0
    numba.set_num_threads(threads)
    print(f"engine on one core: wall {t_one:.3f} s")

    if args.loop_starts >= len(grid):
        sub, scale, label = grid, 1.0, ""
    else:
        pick = np.linspace(0, len(grid) - 1, args.loop_starts).round().astype(int)
        sub, scale, label = grid[pick], len(grid) / args.loop_starts, " (ESTIMATED from a subset)"
    f_loop, x_loop, t_loop = scipy_loop(df, sub)
    t_loop_full = t_loop * scale
    print(f"scipy BFGS per-start loop over {len(sub)} starts: wall {t_loop:.2f} s; "
          f"for 4500 starts {t_loop_full:.1f} s{label}; best objective {f_loop:.12g}")

    speedup = t_loop_full / t_fit
    rel = (fit.objective - f_loop) / f_loop
    print(f"\nspeed-up: {speedup:.1f}x ({t_loop_full / t_one:.1f}x with the engine on one core, like the loop); engine objective minus loop objective: {fit.objective - f_loop:.3e} "
          f"({rel:.2e} relative)")

    t0 = time.perf_counter()
    boot = scaling.fit_chinchilla(df, n_bootstrap=args.n_boot, seed=1)
    t_total = time.perf_counter() - t0
    t_boot = boot.timings["bootstrap_s"]
    print(f"bootstrap: {args.n_boot} row resamples in {t_boot:.2f} s (whole call with the fit {t_total:.2f} s); "
          f"{boot.n_draws_converged} refits converged")
    ci = boot.conf_int()
    print("\nrecovery (95% bootstrap percentile intervals):")
    for p, v in truth.items():
        lo, hi = ci.loc[p, "lower"], ci.loc[p, "upper"]
        print(f"  {p:6s} true {v:<8g} estimate {boot.params[p]:<10.5g} [{lo:.5g}, {hi:.5g}] "
              f"{'inside' if lo <= v <= hi else 'OUTSIDE'}")

    print("\ngoals:")
    print(f"  full-grid fit <= {GOAL_FIT_S:g} s wall: {t_fit:.3f} s -> {verdict(t_fit <= GOAL_FIT_S)}")
    print(f"  >= {GOAL_SPEEDUP:g}x faster than the per-start loop: {speedup:.1f}x{label} -> "
          f"{verdict(speedup >= GOAL_SPEEDUP)}")
    print(f"  objective no worse than the loop's: {verdict(fit.objective <= f_loop * (1 + 1e-12))}")
    print(f"  {args.n_boot}-resample bootstrap <= {GOAL_BOOT_S:g} s: {t_boot:.2f} s -> {verdict(t_boot <= GOAL_BOOT_S)}")


if __name__ == "__main__":
    main()
