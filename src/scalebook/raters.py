"""Rater data for the judge-statistics chapter: real public sets and the bundled episode table.

Every loader returns the same tidy shape, one row per (comparison, item), validated against the
`rater_pairs` schema of `data/datasets.yml`:

    comparison   which two raters are compared ("human majority vs gpt-3.5-turbo", a configuration...)
    item_id      the rated item (unique within a comparison)
    cluster      the group of items that are not independent (instruction, skill, or the item itself)
    rater_a      the reference rater's label (human majority, gold, primary judge, original order)
    rater_b      the other rater's label

plus descriptive columns (`rater_a_name`, `rater_b_name`, `kind`, `judge`, `subset`).

Unparseable verdicts (PandaLM's gpt-3.5 "garbage", LLMBar's null winners) are labelled
`INVALID` by the readers; `apply_invalid_policy` then drops them, keeps them as a category of
their own, or refuses them, and the chapter states which policy it used.

- PandaLM test set (Wang et al. 2024; folder layout of WeOpenML/PandaLM `data/`): 999 pairwise
  items, three human annotators, gpt-3.5-turbo and PandaLM-7B; labels `1`, `2`, `tie`; clustered
  by instruction text (170 instructions).
- LLMBar (Zeng et al. 2024; layout of princeton-nlp/LLMBar `Dataset/LLMBar`): 419 items with gold
  labels `1`/`2`, six judges each run with the outputs in the original and in the swapped order.
  The verdicts are parsed from the judges' completion text ("Output (a)" / "Output (b)"), the
  swapped-order verdict is mapped back to the original numbering, and the result is checked
  against the `winner` the upstream evaluation stored.
"""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import paths, tables
from .errors import DataError, format_rows

INVALID = "invalid"
SCHEMA = "rater_pairs"
INVALID_POLICIES = ("drop", "category", "error")

PANDALM_FILES = {"items": "testset-v1.json", "gpt-3.5-turbo": "gpt-3.5-turbo-testset-v1.json",
                 "PandaLM-7B": "pandalm-7b-testset-v1.json"}
PANDALM_CODES = {0: "tie", 1: "1", 2: "2"}
PANDALM_GPT = {"1": "1", "2": "2", "Tie": "tie", "garbage": INVALID}
PANDALM_COMPARISONS = (("human_majority", "gpt-3.5-turbo"), ("human_majority", "PandaLM-7B"),
                       ("gpt-3.5-turbo", "PandaLM-7B"))

LLMBAR_SUBSETS = ("Natural", "Adversarial/Neighbor", "Adversarial/GPTInst", "Adversarial/GPTOut",
                  "Adversarial/Manual")
LLMBAR_JUDGES = ("GPT-4", "ChatGPT", "ChatGPT-0301", "PaLM2", "LLaMA2", "Falcon")


# ----------------------------------------------------------------------------------------------
# common
# ----------------------------------------------------------------------------------------------
def _folder(path, what: str, marker: str) -> Path:
    """Accept the dataset folder or its parent `data/` / `Dataset/...` layout; check it is there."""
    p = paths.resolve(path)
    if not p.exists():
        raise DataError(f"{paths.display_path(p)}: folder not found (expected the {what} folder)")
    for cand in (p, p / "data", p / "Dataset" / "LLMBar"):
        if (cand / marker).exists():
            return cand
    raise DataError(f"{paths.display_path(p)}: does not look like the {what} folder (no {marker} in it, "
                    f"in data/ or in Dataset/LLMBar/)")


def _read_json(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{paths.display_path(path)}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{paths.display_path(path)}: not valid JSON ({exc})") from None
    if not isinstance(data, list) or not data:
        raise DataError(f"{paths.display_path(path)}: expected a non-empty JSON list of records")
    return data


def validate_pairs(df: pd.DataFrame, *, source: str = "rater pairs",
                   columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Check a tidy rater-pair table (schema `rater_pairs`) and return it with canonical columns."""
    return tables.validate(df, SCHEMA, source=source, columns=columns)


def load_pairs(path, *, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a user's tidy rater-pair table (CSV/TSV/JSONL) with columns comparison, item_id,
    cluster, rater_a, rater_b (rename with `columns={canonical: yours}`)."""
    return tables.load_table(path, SCHEMA, columns=columns)


def apply_invalid_policy(df: pd.DataFrame, policy: str = "drop", *, source: str = "rater pairs") -> pd.DataFrame:
    """What to do with items where either rater's verdict is `INVALID` (unparseable).

    `drop`: remove those items from that comparison (agreement is then conditional on both
    verdicts parsing); `category`: keep `invalid` as a label of its own (a parse failure counts as
    a disagreement unless both failed); `error`: refuse, naming the rows.
    """
    if policy not in INVALID_POLICIES:
        raise DataError(f"unknown policy {policy!r} for invalid verdicts; use one of {list(INVALID_POLICIES)}")
    bad = (df["rater_a"] == INVALID) | (df["rater_b"] == INVALID)
    if policy == "error":
        tables.check_rows(bad.to_numpy(), source, "verdicts must be parseable (policy 'error')")
        return df
    if policy == "drop":
        return df[~bad.to_numpy()].reset_index(drop=True)
    return df


def _rater_names(df: pd.DataFrame, side: str) -> pd.Series:
    """Each row's name for the rater on `side`; without name columns, the comparison and side."""
    col = f"{side}_name"
    if col in df.columns:
        return df[col].astype(str)
    return df["comparison"].astype(str) + f" ({side.replace('_', ' ')})"


def invalid_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per rater: how many of the items it rated have an unparseable verdict, before any policy.

    A rater that sits in several comparisons (on the same items) is counted once per item.
    """
    long = pd.concat([pd.DataFrame({"rater": _rater_names(df, side), "item_id": df["item_id"].astype(str),
                                    "invalid": (df[side] == INVALID).to_numpy()}) for side in ("rater_a", "rater_b")])
    long = long.drop_duplicates(["rater", "item_id"])
    out = long.groupby("rater", sort=False)["invalid"].agg(n="size", n_invalid="sum").reset_index()
    out["n_invalid"] = out["n_invalid"].astype(int)
    out["invalid_rate"] = out["n_invalid"] / out["n"]
    return out


def _pairs(wide: pd.DataFrame, a: str, b: str, comparison: str, *, names: tuple[str, str] | None = None,
           **extra) -> pd.DataFrame:
    names = names or (a, b)
    out = pd.DataFrame({"comparison": comparison, "item_id": wide["item_id"].astype(str),
                        "cluster": wide["cluster"].astype(str), "rater_a": wide[a].astype(str),
                        "rater_b": wide[b].astype(str), "rater_a_name": names[0], "rater_b_name": names[1]})
    for k, v in extra.items():
        out[k] = v
    return out


# ----------------------------------------------------------------------------------------------
# PandaLM
# ----------------------------------------------------------------------------------------------
def read_pandalm(path) -> pd.DataFrame:
    """The PandaLM test set as one row per item: item_id, cluster (instruction index in order of
    first appearance), motivation_app, cmp_key, annotator1-3, human_majority, gpt-3.5-turbo,
    PandaLM-7B. Labels: '1', '2', 'tie', and 'invalid' for gpt-3.5's unparseable 'garbage'.
    `human_majority` is the modal human label, or None when all three annotators differ."""
    folder = _folder(path, "PandaLM test set", PANDALM_FILES["items"])
    items = pd.DataFrame(_read_json(folder / PANDALM_FILES["items"]))
    shown = paths.display_path(folder / PANDALM_FILES["items"])
    need = ["idx", "instruction", "annotator1", "annotator2", "annotator3"]
    miss = [c for c in need if c not in items.columns]
    if miss:
        raise DataError(f"{shown}: missing key(s) {miss} in the records")
    out = pd.DataFrame({"item_id": items["idx"].astype(str)})
    out["cluster"] = pd.factorize(items["instruction"].astype(str))[0]
    for c in ("motivation_app", "cmp_key"):
        if c in items.columns:
            out[c] = items[c].astype(str)
    for c in ("annotator1", "annotator2", "annotator3"):
        codes = pd.to_numeric(items[c], errors="coerce")
        bad = ~codes.isin(list(PANDALM_CODES))
        tables.check_rows(bad.to_numpy(), shown, f"'{c}' must be 0 (tie), 1 or 2")
        out[c] = codes.astype(int).map(PANDALM_CODES)
    ann = out[["annotator1", "annotator2", "annotator3"]]
    mode = ann.mode(axis=1)
    counts = ann.apply(lambda r: r.value_counts().max(), axis=1)
    out["human_majority"] = np.where(counts >= 2, mode[0], None)
    for judge, key, mapping in (("gpt-3.5-turbo", "gpt_result", PANDALM_GPT),
                                ("PandaLM-7B", "pandalm_result", None)):
        f = folder / PANDALM_FILES[judge]
        recs = pd.DataFrame(_read_json(f))
        js = paths.display_path(f)
        if key not in recs.columns or "idx" not in recs.columns:
            raise DataError(f"{js}: records need keys 'idx' and '{key}'")
        if len(recs) != len(items) or (recs["idx"].astype(str).to_numpy() != out["item_id"].to_numpy()).any():
            raise DataError(f"{js}: rows are not aligned with {shown} by idx")
        if mapping is None:
            codes = pd.to_numeric(recs[key], errors="coerce")
            tables.check_rows((~codes.isin(list(PANDALM_CODES))).to_numpy(), js, f"'{key}' must be 0, 1 or 2")
            out[judge] = codes.astype(int).map(PANDALM_CODES)
        else:
            raw = recs[key].astype(str)
            tables.check_rows((~raw.isin(list(mapping))).to_numpy(), js, f"'{key}' must be one of {list(mapping)}")
            out[judge] = raw.map(mapping)
    return out


def load_pandalm(path, *, comparisons: Sequence[tuple[str, str]] = PANDALM_COMPARISONS,
                 invalid: str = "drop", no_majority: str = "drop") -> pd.DataFrame:
    """Tidy rater pairs from the PandaLM test set (see `read_pandalm`), clustered by instruction.

    `comparisons`: (rater_a, rater_b) pairs among human_majority, annotator1-3, gpt-3.5-turbo and
    PandaLM-7B. `invalid`: policy for gpt-3.5's unparseable verdicts (`apply_invalid_policy`).
    `no_majority`: `drop` items whose three annotators all differ, or `error`.
    """
    wide = read_pandalm(path)
    known = [c for c in wide.columns if c not in ("item_id", "cluster", "motivation_app", "cmp_key")]
    frames = []
    for a, b in comparisons:
        for r in (a, b):
            if r not in known:
                raise DataError(f"PandaLM: unknown rater {r!r}; known raters: {known}")
        w = wide
        if "human_majority" in (a, b):
            none = w["human_majority"].isna()
            if none.any() and no_majority == "error":
                tables.check_rows(none.to_numpy(), "PandaLM", "the three annotators must have a majority label")
            w = w[~none]
        frames.append(_pairs(w, a, b, f"{a} vs {b}", kind="judge vs human" if a == "human_majority" else
                             "rater vs rater"))
    df = pd.concat(frames, ignore_index=True)
    df = validate_pairs(df, source="PandaLM")
    return apply_invalid_policy(df, invalid, source="PandaLM")


# ----------------------------------------------------------------------------------------------
# LLMBar
# ----------------------------------------------------------------------------------------------
def _verdict(completion: str, swapped: bool) -> str:
    """The original-order output a judge preferred, or INVALID when its answer does not parse.

    The Vanilla prompt asks for "Output (a)" or "Output (b)". With the outputs swapped, (a) shows
    the original output 2, so the verdict is mapped back to the original numbering.
    """
    a, b = "Output (a)" in completion, "Output (b)" in completion
    if a == b:
        return INVALID
    presented = "1" if a else "2"
    return {"1": "2", "2": "1"}[presented] if swapped else presented


def read_llmbar(path, *, judges: Sequence[str] = LLMBAR_JUDGES, subsets: Sequence[str] = LLMBAR_SUBSETS
                ) -> pd.DataFrame:
    """LLMBar (Vanilla prompting) as one row per (judge, item): subset, item (0-based row within the
    subset), item_id, gold ('1'/'2'), judge, original and swapped-order verdicts ('1', '2' or
    'invalid'), both in the original output numbering."""
    root = _folder(path, "LLMBar", "Natural/dataset.json")
    frames = []
    for subset in subsets:
        gold_path = root / subset / "dataset.json"
        gold = _read_json(gold_path)
        for judge in judges:
            f = root / subset / "evaluators" / judge / "Vanilla" / "result.json"
            recs = _read_json(f)
            shown = paths.display_path(f)
            if len(recs) != len(gold):
                raise DataError(f"{shown}: {len(recs)} rows, but {paths.display_path(gold_path)} has {len(gold)}")
            rows = []
            for i, (g, r) in enumerate(zip(gold, recs)):
                if r.get("label") != g.get("label") or r.get("input") != g.get("input"):
                    raise DataError(f"{shown}: row {i + 1} does not match row {i + 1} of the subset's dataset.json")
                try:
                    last = r["results"][-1]
                    orig, swap = last["swap = False"], last["swap = True"]
                except (KeyError, IndexError, TypeError):
                    raise DataError(f"{shown}: row {i + 1} lacks results[-1]['swap = False'/'swap = True']") from None
                v_o = _verdict(str(orig["completion"][0]), swapped=False)
                v_s = _verdict(str(swap["completion"][0]), swapped=True)
                for v, stored, which in ((v_o, orig.get("winner"), "original"), (v_s, swap.get("winner"), "swapped")):
                    if (stored is None and v != INVALID) or (stored is not None and str(stored) != v):
                        raise DataError(f"{shown}: row {i + 1}: the {which}-order verdict parsed from the completion "
                                        f"({v}) differs from the stored winner ({stored})")
                rows.append({"subset": subset, "item": i, "gold": str(g["label"]), "judge": judge,
                             "verdict_original": v_o, "verdict_swapped": v_s})
            frames.append(pd.DataFrame(rows))
    out = pd.concat(frames, ignore_index=True)
    bad = ~out["gold"].isin(["1", "2"])
    tables.check_rows(bad.to_numpy(), "LLMBar", "gold labels must be 1 or 2")
    out.insert(2, "item_id", out["subset"] + "/" + out["item"].astype(str))
    return out


def load_llmbar(path, *, kinds: Sequence[str] = ("vs_gold", "order"), order: str = "original",
                judges: Sequence[str] = LLMBAR_JUDGES, invalid: str = "drop") -> pd.DataFrame:
    """Tidy rater pairs from LLMBar, one comparison per judge and kind.

    `vs_gold`: gold (rater a) against the judge's verdict with the outputs in the `order`
    ('original', 'swapped' or 'both': one comparison per order). `order`: the judge's verdict in the
    original order (rater a) against the swapped order mapped back (rater b): agreement here is
    position consistency, and a marginal shift is position bias. Items are independent clusters
    (every item has its own instruction); `subset` is kept for grouping.
    """
    if order not in ("original", "swapped", "both"):
        raise DataError(f"order must be 'original', 'swapped' or 'both', got {order!r}")
    wide = read_llmbar(path, judges=judges)
    wide["cluster"] = wide["item_id"]
    frames = []
    for judge in judges:
        w = wide[wide["judge"] == judge]
        if "vs_gold" in kinds:
            for o in (("original", "swapped") if order == "both" else (order,)):
                col = f"verdict_{o}"
                frames.append(_pairs(w, "gold", col, f"{judge} vs gold ({o} order)", kind="judge vs gold",
                                     names=("gold", f"{judge} ({o} order)"), judge=judge,
                                     subset=w["subset"].to_numpy()))
        if "order" in kinds:
            frames.append(_pairs(w, "verdict_original", "verdict_swapped", f"{judge}: original vs swapped order",
                                 kind="order swap", names=(f"{judge} (original order)", f"{judge} (swapped order)"),
                                 judge=judge, subset=w["subset"].to_numpy()))
    unknown = set(kinds) - {"vs_gold", "order"}
    if unknown or not frames:
        raise DataError(f"kinds must be among 'vs_gold' and 'order', got {list(kinds)}")
    df = validate_pairs(pd.concat(frames, ignore_index=True), source="LLMBar")
    return apply_invalid_policy(df, invalid, source="LLMBar")


# ----------------------------------------------------------------------------------------------
# episodes
# ----------------------------------------------------------------------------------------------
def episode_pairs(episodes: pd.DataFrame, a_col: str = "judge_primary_pass", b_col: str = "judge_cross_pass", *,
                  group_col: str = "config", task_col: str = "task_id", cluster_col: str = "skill_id",
                  condition_col: str = "condition", labels: dict | None = None) -> pd.DataFrame:
    """Two scorers of the episode table as rater pairs: one comparison per configuration, one item
    per episode (task x condition), clustered by skill. Labels: 'pass' / 'fail'."""
    labels = labels or {1: "pass", 0: "fail"}
    need = [group_col, task_col, cluster_col, condition_col, a_col, b_col]
    miss = [c for c in need if c not in episodes.columns]
    if miss:
        raise DataError(f"episodes: missing column(s) {miss}; it has {list(episodes.columns)}")
    out = pd.DataFrame({
        "comparison": episodes[group_col].astype(str),
        "item_id": episodes[task_col].astype(str) + "/" + episodes[condition_col].astype(str),
        "cluster": episodes[cluster_col].astype(str),
        "rater_a": episodes[a_col].map(labels), "rater_b": episodes[b_col].map(labels),
        "rater_a_name": a_col, "rater_b_name": b_col, "kind": "scorer vs scorer",
        "condition": episodes[condition_col].astype(str)})
    return validate_pairs(out, source="episodes")


def all_pairs(raters: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of the given raters, in order."""
    return list(combinations(raters, 2))


def invalid_by_label(df: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Share of unparseable verdicts of each rater that has any, by the label the other rater gave
    (items where the other rater's verdict parses), with cluster-bootstrap intervals.

    Run it on the pairs before `apply_invalid_policy` drops anything. Empty when nothing is invalid.
    """
    from .judges import cluster_mean  # judges imports nothing from here; keep the dependency one-way at import

    rows = []
    for comp, g in df.groupby("comparison", sort=False):
        for side, other in (("rater_a", "rater_b"), ("rater_b", "rater_a")):
            if not (g[side] == INVALID).any():
                continue
            name, oname = _rater_names(g, side).iloc[0], _rater_names(g, other).iloc[0]
            h = g[g[other] != INVALID]
            for lab, hh in h.groupby(other, sort=True):
                m = cluster_mean((hh[side] == INVALID).astype(float).to_numpy(), hh["cluster"].to_numpy(),
                                 n_boot=n_boot, seed=seed, alpha=alpha)
                rows.append({"comparison": comp, "rater": f"{name} (labels from {oname})", "other_label": lab,
                             "n": m["n"], "n_invalid": int((hh[side] == INVALID).sum()), "estimate": m["estimate"],
                             "lower": m["lower"], "upper": m["upper"]})
    cols = ["comparison", "rater", "other_label", "n", "n_invalid", "estimate", "lower", "upper"]
    out = pd.DataFrame(rows, columns=cols)
    # A rater compared with several others would repeat; keep its first comparison per other rater.
    return out.drop_duplicates(["rater", "other_label"]).reset_index(drop=True)


SOURCES = ("episodes", "pandalm", "llmbar", "pairs")


def describe_source(source: str, path) -> str:
    """What kind of data a run shows, for captions: simulated, real (which set) or user-supplied."""
    from . import datasets

    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}; use one of {list(SOURCES)}")
    if source == "pandalm":
        return "real data (PandaLM human-annotated test set)"
    if source == "llmbar":
        return "real data (LLMBar, Vanilla prompting)"
    resolved = paths.resolve(path).resolve()
    for name, e in datasets.entries().items():
        if paths.resolve(e["file"]).resolve() == resolved:
            return f"{e.get('kind', 'bundled')} data (bundled '{name}' table)"
    return f"user-supplied data ({resolved.name})"
