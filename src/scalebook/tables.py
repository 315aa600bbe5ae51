"""Load tables and validate them against the schemas declared in `data/datasets.yml`.

Every table a notebook accepts passes through `load_table`: it reads the file (CSV, TSV or
JSON lines), maps the user's column names onto the schema's, and checks types, ranges,
categories and uniqueness. Any violation raises `DataError` naming the file, the column,
the first offending rows (1-based data rows, header excluded) and what was expected.
Modules add checks a schema cannot express (pairing, correct <= total) with `check_rows`.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import yaml

from . import paths
from .errors import DataError, format_rows

TYPES = ("float", "int", "str", "binary", "category", "bool")


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "float"
    description: str = ""
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    categories: tuple | None = None
    nullable: bool = False
    required: bool = True

    def expected(self) -> str:
        parts = {"float": "finite numbers", "int": "whole numbers", "str": "non-empty text",
                 "binary": "0 or 1", "bool": "true or false",
                 "category": f"one of {list(self.categories or ())}"}[self.type]
        bounds = [f"{op} {v:g}" for op, v in
                  ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le)) if v is not None]
        return parts + (f" {' and '.join(bounds)}" if bounds else "")


@dataclass(frozen=True)
class Schema:
    name: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = ()
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any]) -> "Schema":
        cols = []
        for cname, cspec in (spec.get("columns") or {}).items():
            cspec = dict(cspec or {})
            if cspec.get("type", "float") not in TYPES:
                raise DataError(f"schema '{name}': column '{cname}' has unknown type {cspec.get('type')!r}; "
                                f"use one of {', '.join(TYPES)}")
            if "categories" in cspec:
                cspec["categories"] = tuple(cspec["categories"])
            cols.append(Column(name=cname, **cspec))
        return cls(name=name, columns=tuple(cols), unique=tuple(spec.get("unique") or ()),
                   description=spec.get("description", ""),
                   extra={k: v for k, v in spec.items() if k not in ("columns", "unique", "description")})


def registry_path() -> Path:
    return paths.data_dir() / "datasets.yml"


def registry() -> dict:
    with open(registry_path(), encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def schema(name: str) -> Schema:
    schemas = registry().get("schemas") or {}
    if name not in schemas:
        raise DataError(f"no schema named '{name}' in {paths.display_path(registry_path())}; "
                        f"known: {', '.join(sorted(schemas))}")
    return Schema.from_dict(name, schemas[name])


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV/TSV/JSONL file into strings-preserving pandas, with a clear error on failure."""
    p = paths.resolve(path)
    shown = paths.display_path(p)
    if not p.exists():
        raise DataError(f"{shown}: file not found")
    if p.is_dir():
        raise DataError(f"{shown}: is a folder, expected a table file (.csv, .tsv or .jsonl)")
    raw = p.read_bytes()
    if not raw.strip():
        raise DataError(f"{shown}: the file is empty; expected a header row and data rows")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{shown}: not valid UTF-8 text (byte {exc.start}, line {line}); "
                        f"re-save the file as UTF-8") from None
    try:
        if p.suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(io.StringIO(text), lines=True)
        elif p.suffix == ".json":
            df = pd.read_json(io.StringIO(text))
        else:
            sep = "\t" if p.suffix == ".tsv" else ","
            df = pd.read_csv(io.StringIO(text), sep=sep, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{shown}: could not be parsed as a table: {str(exc).strip()}") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise DataError(f"{shown}: has a header but no data rows")
    return df


def _coerce(df: pd.DataFrame, col: Column, source: str) -> pd.Series:
    s = df[col.name]
    missing = s.isna()
    if col.type in ("float", "int", "binary"):
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & ~missing
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy()) + 1
            examples = ", ".join(repr(v) for v in s[bad].head(3).tolist())
            raise DataError(f"{source}: column '{col.name}' must hold {col.expected()}; "
                            f"{format_rows(rows)} hold text ({examples})")
        num = num.astype(float)
        inf = np.isinf(num.to_numpy())
        if inf.any():
            raise DataError(f"{source}: column '{col.name}' must hold {col.expected()}; "
                            f"{format_rows(np.flatnonzero(inf) + 1)} are infinite")
        if col.type in ("int", "binary"):
            frac = (num % 1 != 0) & ~missing
            if frac.any():
                raise DataError(f"{source}: column '{col.name}' must hold {col.expected()}; "
                                f"{format_rows(np.flatnonzero(frac.to_numpy()) + 1)} are fractional")
        if col.type == "binary":
            off = ~num.isin([0.0, 1.0]) & ~missing
            if off.any():
                raise DataError(f"{source}: column '{col.name}' must hold 0 or 1; "
                                f"{format_rows(np.flatnonzero(off.to_numpy()) + 1)} hold "
                                f"{sorted(set(num[off].tolist()))[:5]}")
        return num if col.type == "float" or missing.any() else num.astype("int64")
    if col.type == "bool":
        mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
        txt = s.astype(str).str.strip().str.lower()
        out = txt.map(mapping)
        bad = out.isna() & ~missing
        if bad.any():
            raise DataError(f"{source}: column '{col.name}' must hold true/false; "
                            f"{format_rows(np.flatnonzero(bad.to_numpy()) + 1)} do not")
        return out.astype(bool) if not missing.any() else out
    txt = s.astype("string").str.strip()
    if col.type == "category":
        allowed = {str(c) for c in col.categories or ()}
        bad = ~txt.isin(allowed) & ~missing
        if bad.any():
            seen = sorted(set(txt[bad].astype(str).tolist()))[:5]
            raise DataError(f"{source}: column '{col.name}' must hold {col.expected()}; "
                            f"{format_rows(np.flatnonzero(bad.to_numpy()) + 1)} hold {seen}")
    else:
        empty = (txt == "") & ~missing
        if empty.any():
            raise DataError(f"{source}: column '{col.name}' must hold non-empty text; "
                            f"{format_rows(np.flatnonzero(empty.to_numpy()) + 1)} are blank")
    return txt.astype(object).where(~missing, None)


def validate(df: pd.DataFrame, schema_: Schema | str, *, source: str = "table",
             columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Check `df` against a schema and return a copy with canonical column names and types.

    `columns` maps the schema's column names to the user's (e.g. ``{"N": "params"}``).
    """
    sch = schema(schema_) if isinstance(schema_, str) else schema_
    columns = dict(columns or {})
    unknown = set(columns) - set(sch.names)
    if unknown:
        raise DataError(f"{source}: column mapping names {sorted(unknown)}, which the schema "
                        f"'{sch.name}' does not have; its columns are {sch.names}")
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    renames = {user: canon for canon, user in columns.items() if user != canon}
    for user, canon in renames.items():
        if user not in df.columns:
            continue
        if canon in df.columns:  # the canonical name is taken by another column the user does not mean
            df = df.drop(columns=canon)
    df = df.rename(columns=renames)
    if not df.columns.is_unique:
        dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
        raise DataError(f"{source}: duplicated column names {dup}")
    missing_cols = [c.name for c in sch.columns if c.required and c.name not in df.columns]
    if missing_cols:
        asked = [columns.get(m, m) for m in missing_cols]
        raise DataError(f"{source}: missing column(s) {asked} (schema '{sch.name}' needs "
                        f"{sch.names}); the file has {list(df.columns)}. Rename the column or pass "
                        f"the matching column-name parameter.")
    if len(df) == 0:
        raise DataError(f"{source}: has no data rows")
    for col in sch.columns:
        if col.name not in df.columns:
            continue
        values = _coerce(df, col, source)
        missing = values.isna() if hasattr(values, "isna") else pd.isna(values)
        if not col.nullable and missing.any():
            raise DataError(f"{source}: column '{col.name}' has empty/NaN values at "
                            f"{format_rows(np.flatnonzero(np.asarray(missing)) + 1)}; expected {col.expected()}")
        if col.type in ("float", "int"):
            v = values.to_numpy(dtype=float)
            for op, bound, ok in (("> ", col.gt, lambda x, b: x > b), (">= ", col.ge, lambda x, b: x >= b),
                                  ("< ", col.lt, lambda x, b: x < b), ("<= ", col.le, lambda x, b: x <= b)):
                if bound is None:
                    continue
                bad = ~ok(v, bound) & ~np.isnan(v)
                if bad.any():
                    raise DataError(f"{source}: column '{col.name}' must be {op}{bound:g}; "
                                    f"{format_rows(np.flatnonzero(bad) + 1)} hold "
                                    f"{[float(x) for x in v[bad][:3]]}")
        df[col.name] = values
    if sch.unique:
        dup = df.duplicated(list(sch.unique), keep=False)
        if dup.any():
            raise DataError(f"{source}: rows must be unique by {list(sch.unique)}; "
                            f"{format_rows(np.flatnonzero(dup.to_numpy()) + 1)} repeat a key")
    return df.reset_index(drop=True)


def load_table(path: str | Path, schema_: Schema | str, *,
               columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read `path` and validate it against `schema_` (see `validate`)."""
    df = read_table(path)
    return validate(df, schema_, source=paths.display_path(paths.resolve(path)), columns=columns)


def check_rows(mask, source: str, message: str) -> None:
    """Raise `DataError` if any row of the boolean `mask` is true; `message` says what is expected."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        raise DataError(f"{source}: {message}; violated at {format_rows(np.flatnonzero(mask) + 1)}")


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """A table as deterministic CSV bytes (fixed float format, LF line ends, no index)."""
    return df.to_csv(index=False, lineterminator="\n", float_format="%.10g",
                     quoting=csv.QUOTE_MINIMAL).encode("utf-8")


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).write_bytes(to_csv_bytes(df))
