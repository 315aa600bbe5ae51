"""Notebook parameters: read them from the `parameters` cell, merge the sources, validate.

The parameters cell is the contract: each line `name = literal  # meaning` (or
`name: float | None = None  # meaning`) declares a parameter, its type and its one-line
meaning. Values arrive from `report.yml` sets, a `--params-file` and `-p key=value`; all are
checked here before anything runs (papermill alone only warns on unknown names).
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext
import yaml

from . import paths
from .hashing import path_sha256
from .errors import ParameterError

TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}
TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}
INT_RE = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    help: str
    optional: bool = False

    @property
    def is_path(self) -> bool:
        return self.name.endswith("_path")

    def describe_type(self) -> str:
        return f"{self.type} or None" if self.optional else self.type


def _annotation_type(node: ast.expr) -> tuple[str, bool]:
    """`float`, `float | None`, `Optional[float]` -> ('float', optional)."""
    if isinstance(node, ast.Name) and node.id in TYPES:
        return node.id, False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        names = [n for n in (node.left, node.right)]
        kinds = [_annotation_type(n)[0] if not (isinstance(n, ast.Constant) and n.value is None) else None
                 for n in names]
        real = [k for k in kinds if k]
        if len(real) == 1 and None in kinds:
            return real[0], True
    if isinstance(node, ast.Subscript) and getattr(node.value, "id", "") == "Optional":
        return _annotation_type(node.slice)[0], True
    raise ValueError(ast.unparse(node))


def _comments(source: str) -> dict[int, str]:
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def parameters_cell(notebook_path: Path) -> str:
    nb = jupytext.read(notebook_path)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{paths.display_path(notebook_path)}: expected exactly one code cell tagged "
                             f"'parameters', found {len(cells)}")
    return cells[0].source


def read_parameters(notebook_path: Path) -> dict[str, Parameter]:
    """The declared parameters of a notebook, in order."""
    return parse_parameters(parameters_cell(notebook_path), paths.display_path(notebook_path))


def parse_parameters(source: str, shown: str) -> dict[str, Parameter]:
    """Parse the source of a parameters cell; `shown` names it in error messages."""
    comments = _comments(source)
    params: dict[str, Parameter] = {}
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, value_node, annotation = stmt.targets[0].id, stmt.value, None
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            name, value_node, annotation = stmt.target.id, stmt.value, stmt.annotation
        else:
            raise ParameterError(f"{shown}: the parameters cell may hold only `name = literal  # meaning` lines; "
                                 f"line {stmt.lineno} is not one")
        try:
            default = ast.literal_eval(value_node)
        except ValueError:
            raise ParameterError(f"{shown}: parameter '{name}' (line {stmt.lineno}) must have a literal "
                                 f"default") from None
        if annotation is not None:
            try:
                ptype, optional = _annotation_type(annotation)
            except ValueError as exc:
                raise ParameterError(f"{shown}: parameter '{name}' has an unsupported annotation {exc}") from None
        elif default is None:
            raise ParameterError(f"{shown}: parameter '{name}' defaults to None; annotate its type "
                                 f"(e.g. `{name}: float | None = None`)")
        else:
            ptype, optional = type(default).__name__, False
            if ptype not in TYPES:
                raise ParameterError(f"{shown}: parameter '{name}' has a default of unsupported type {ptype}")
        help_ = comments.get(stmt.lineno, "")
        if not help_:
            raise ParameterError(f"{shown}: parameter '{name}' (line {stmt.lineno}) needs a `# meaning` comment")
        params[name] = Parameter(name, ptype, default, help_, optional)
    return params


def coerce(param: Parameter, value: Any, origin: str, notebook: str) -> Any:
    """Convert/check one value against its declared type; `origin` says where the value came from."""
    def fail() -> ParameterError:
        return ParameterError(f"parameter '{param.name}' of notebook '{notebook}' expects "
                              f"{param.describe_type()}; got {value!r} ({origin})")

    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null") and param.optional):
        if param.optional:
            return None
        raise fail()
    t = param.type
    if isinstance(value, str) and t != "str":
        text = value.strip()
        if t == "int":
            if not INT_RE.match(text):
                raise fail()
            return int(text)
        if t == "float":
            try:
                out = float(text)
            except ValueError:
                raise fail() from None
            if out != out or out in (float("inf"), float("-inf")):
                raise fail()
            return out
        if t == "bool":
            if text.lower() in TRUE:
                return True
            if text.lower() in FALSE:
                return False
            raise fail()
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise fail() from None
    if t == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if t in ("int", "float") and isinstance(value, bool):
        raise fail()
    if not isinstance(value, TYPES[t]):
        raise fail()
    return value


def _normalise_path(value: str, origin_dir: Path | None) -> str:
    """Paths from the command line are relative to the caller's folder; report.yml's to the root.

    The normalised form is root-relative when the file is inside the repository, so run ids do
    not depend on where the repository is checked out.
    """
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = (origin_dir or paths.root()) / p
    return paths.display_path(p)


def resolve(notebook_path: Path, notebook: str, layers: list[tuple[str, dict, Path | None]]) -> dict[str, Any]:
    """Merge parameter layers (lowest first) onto the cell's defaults and validate each value.

    Each layer is `(origin, values, base_dir_for_relative_paths)`.
    """
    declared = read_parameters(notebook_path)
    resolved = {name: p.default for name, p in declared.items()}
    for origin, values, base in layers:
        for name, value in values.items():
            if name not in declared:
                raise ParameterError(f"unknown parameter '{name}' for notebook '{notebook}' ({origin}); "
                                     f"valid parameters: {', '.join(declared)}")
            value = coerce(declared[name], value, origin, notebook)
            if declared[name].is_path and isinstance(value, str):
                value = _normalise_path(value, base)
            resolved[name] = value
    for name, p in declared.items():
        if p.is_path and isinstance(resolved[name], str) and not paths.resolve(resolved[name]).exists():
            raise ParameterError(f"parameter '{name}' of notebook '{notebook}': {resolved[name]} does not exist")
    return resolved


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParameterError(f"-p expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value
    return out


def read_params_file(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParameterError(f"--params-file {path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"--params-file {path}: not valid YAML/JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"--params-file {path}: expected a mapping of parameter names to values")
    return data


def data_hashes(declared: dict[str, Parameter], resolved: dict[str, Any]) -> dict[str, str]:
    """sha256 of every file (or folder, hashed file by file) named by a `*_path` parameter."""
    out = {}
    for name, p in declared.items():
        value = resolved.get(name)
        if p.is_path and isinstance(value, str):
            out[value] = path_sha256(paths.resolve(value))
    return out
