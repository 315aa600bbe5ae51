"""Loss curves across model size and a third factor (seed 002): tables, the joint law, panel statistics, charts.

The chapter `notebooks/loss_curves.md` fits one law L(N, D, T) to every checkpoint of every training run:
the Chinchilla form in parameters N and tokens D (`scaling.fit_chinchilla`), with the third factor T entering as a
covariate that multiplies chosen terms by T^gamma. This module loads the curves (the bundled simulated table, any
table with the same columns, or the over-training testbed of Gadre et al. 2024), restricts the fit to the part of
training a Chinchilla law describes (tokens >= `min_tokens`), and computes what the chapter reports: per-panel bias
and error of the fitted curves, an extrapolation test that refits without the largest model, and the
compute-optimal allocation.
"""
from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from . import figures, paths, scaling, tables
from .errors import DataError

SCHEMA = "loss_curves"


# -- loading -----------------------------------------------------------------------------

def load_overtrain_gadre2024(folder: str | Path, *, val_data: str = "val_tok_mult/openlm") -> pd.DataFrame:
    """Final losses of the 104 models of Gadre et al. (2024), one row per model.

    Columns: model, dataset (training set), N (`hyperparameters.params`), tokens (`hyperparameters.tokens`),
    multiplier (tokens / 20 N) and loss (the final loss on the evaluation set whose identifier contains
    `val_data`; by default the in-distribution `val_tok_mult/openlm` set).
    """
    root = paths.resolve(folder)
    shown = paths.display_path(root)
    files = sorted((root / "models").glob("*.json"))
    if not files:
        raise DataError(f"{shown}: no models/*.json files; expected the over-training testbed folder "
                        f"(mlfoundations/scaling exp_data) with one JSON file per model")
    rows = []
    for path in files:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            hp = rec["hyperparameters"]
            hits = [r for r in rec["results"] if any(val_data in str(v) for v in np.atleast_1d(r["val_data"]))]
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise DataError(f"{shown}/models/{path.name}: not a model record ({exc})") from None
        if len(hits) != 1:
            raise DataError(f"{shown}/models/{path.name}: {len(hits)} evaluations match val_data '{val_data}'; "
                            f"expected exactly one")
        rows.append({"model": rec["name"], "dataset": rec["dataset_name"], "N": float(hp["params"]),
                     "tokens": float(hp["tokens"]), "multiplier": float(hp["chinchilla_multiplier"]),
                     "loss": float(hits[0]["loss"])})
    df = pd.DataFrame(rows)
    df.attrs["source"] = shown
    return df
