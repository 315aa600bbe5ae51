"""`report.yml`: the notebooks of the report, their named parameter sets and figure registry."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import figures, paths
from .errors import ParameterError, ScalebookError

DEFAULT_TIMEOUT = 1800


@dataclass(frozen=True)
class NotebookEntry:
    name: str
    title: str
    figures: tuple[str, ...]
    sets: dict = field(default_factory=dict)
    timeout: int = DEFAULT_TIMEOUT

    @property
    def source(self) -> Path:
        return paths.notebooks_dir() / f"{self.name}.md"

    def set_params(self, set_name: str) -> dict:
        if set_name not in self.sets:
            raise ParameterError(f"notebook '{self.name}' has no parameter set '{set_name}' in report.yml; "
                                 f"its sets are: {', '.join(self.sets) or '(none)'}")
        return dict(self.sets[set_name] or {})


@dataclass(frozen=True)
class ReportConfig:
    title: str
    short_title: str
    authors: tuple[str, ...]
    base_url: str
    notebooks: dict[str, NotebookEntry]

    def notebook(self, name: str) -> NotebookEntry:
        name = Path(name).stem if name.endswith(".md") else name
        if name not in self.notebooks:
            raise ParameterError(f"no notebook named '{name}' in report.yml; known: {', '.join(self.notebooks)}")
        return self.notebooks[name]

    def figure_owner(self, fig_id: str) -> NotebookEntry:
        for nb in self.notebooks.values():
            if fig_id in nb.figures:
                return nb
        raise ParameterError(f"no figure with id '{fig_id}'; known ids: {', '.join(self.figure_ids())}")

    def figure_ids(self) -> list[str]:
        return [f for nb in self.notebooks.values() for f in nb.figures]


def load(path: Path | None = None) -> ReportConfig:
    path = path or paths.report_config()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ScalebookError(f"{path}: not found; run scalebook from the repository") from None
    except yaml.YAMLError as exc:
        raise ScalebookError(f"{paths.display_path(path)}: not valid YAML: {exc}") from None
    meta = raw.get("report") or {}
    notebooks = {}
    seen: dict[str, str] = {}
    for name, spec in (raw.get("notebooks") or {}).items():
        spec = spec or {}
        figs = tuple(spec.get("figures") or ())
        for f in figs:
            figures.check_id(f)
            if f in seen:
                raise ScalebookError(f"report.yml: figure id '{f}' is registered by both '{seen[f]}' and '{name}'")
            seen[f] = name
        sets = spec.get("sets") or {}
        for required in ("default", "smoke"):
            if required not in sets:
                raise ScalebookError(f"report.yml: notebook '{name}' must declare a '{required}' parameter set")
        notebooks[name] = NotebookEntry(name=name, title=spec.get("title", name), figures=figs,
                                        sets=sets, timeout=int(spec.get("timeout", DEFAULT_TIMEOUT)))
    return ReportConfig(title=meta.get("title", "scalebook"), short_title=meta.get("short_title", "scalebook"),
                        authors=tuple(meta.get("authors") or ()), base_url=meta.get("base_url") or "",
                        notebooks=notebooks)
