"""Log-scale axis helpers shared by the chapters' charts (domains, tick values, SI labels)."""
from __future__ import annotations

import numpy as np

# Vega expression: 68000 -> 68K, 4.8e6 -> 4.8M, 7e9 -> 7B.
SI_LABEL = ("datum.value >= 1e12 ? format(datum.value / 1e12, '~g') + 'T' : "
            "datum.value >= 1e9 ? format(datum.value / 1e9, '~g') + 'B' : "
            "datum.value >= 1e6 ? format(datum.value / 1e6, '~g') + 'M' : "
            "datum.value >= 1e3 ? format(datum.value / 1e3, '~g') + 'K' : format(datum.value, '~g')")


def log_axis(values, base: float = 10, pad: float = 0.4, max_ticks: int = 8) -> tuple[list[float], list[float]]:
    """A log-scale domain and tick values for positive `values`.

    The domain is padded by `pad` powers of `base` on each side; ticks are powers of `base`,
    every second (third, ...) one when more than `max_ticks` would fit.
    """
    v = np.log(np.asarray(values, float)) / np.log(base)
    lo, hi = float(np.floor((v.min() - pad) * 4) / 4), float(np.ceil((v.max() + pad) * 4) / 4)
    exps = list(range(int(np.ceil(lo)), int(np.floor(hi)) + 1))
    step = max(1, int(np.ceil(len(exps) / max_ticks)))
    # Keep the power nearest 1 (base**0) on the grid so thinned ticks stay at familiar values.
    ticks = [float(base ** k) for k in exps if k % step == 0]
    return [float(base ** lo), float(base ** hi)], ticks
