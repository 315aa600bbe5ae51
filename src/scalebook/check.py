"""`scalebook check`: is the current book reproducible, and does it stay on the machine?

Every run staged in the current book is re-executed from scratch, with the parameters its
provenance records, into a temporary build folder; each of its figure files and its
`results.json` must equal, byte for byte, the file the built book publishes. The built HTML is
audited for references off the machine. Any difference is listed and the check fails.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import audit, book, config, execute, paths
from .errors import ScalebookError


@dataclass
class CheckReport:
    compared: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


@contextmanager
def _build_dir(path: Path):
    old = os.environ.get("SCALEBOOK_BUILD_DIR")
    os.environ["SCALEBOOK_BUILD_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SCALEBOOK_BUILD_DIR", None)
        else:
            os.environ["SCALEBOOK_BUILD_DIR"] = old


def run_check(*, jobs: int = 1, progress: Callable[[str], None] = print) -> CheckReport:
    html = paths.html_dir()
    stamp = html / book.STAMP
    if not stamp.exists():
        raise ScalebookError("there is no built book to check; run `make book` (or `scalebook book`) first")
    staged = json.loads(stamp.read_text())["runs"]
    report = config.load()
    result = CheckReport()
    for finding in audit.remote_references(html):
        result.differences.append(f"off-machine reference: {finding}")
    for finding in audit.machine_paths(html, paths.root()):
        result.differences.append(f"machine path: {finding}")
    plans = []
    for s in staged:
        prov = json.loads((html / "runs" / s["run_id"] / execute.PROVENANCE).read_text())
        plan = execute.plan_from_provenance(prov, report=report)
        if plan.run_id != s["run_id"]:
            result.differences.append(
                f"{s['notebook']}: its inputs changed since the book was built (run {s['run_id']} would now be "
                f"{plan.run_id}); rebuild the book, then check")
        plans.append((s, plan))
    with tempfile.TemporaryDirectory(prefix="scalebook-check-") as tmp, _build_dir(Path(tmp)):
        outcomes, failures = execute.run_many([p for _, p in plans], jobs=jobs, force=True, progress=progress)
        for plan, exc in failures:
            result.differences.append(f"{plan.name}: the rebuild failed: {exc}")
        fresh = {o.plan.name: o.run_dir for o in outcomes}
        for s, plan in plans:
            if plan.name not in fresh:
                continue
            run_dir = fresh[plan.name]
            pairs = [(run_dir / execute.RESULTS, html / "runs" / s["run_id"] / execute.RESULTS)]
            for fig in report.notebook(plan.name).figures:
                for ext in book.FIGURE_FORMATS:
                    pairs.append((run_dir / "figures" / f"{fig}.{ext}", html / "figures" / f"{fig}.{ext}"))
                    pairs.append((run_dir / "figures" / f"{fig}.{ext}",
                                  html / "runs" / s["run_id"] / "figures" / f"{fig}.{ext}"))
            for new, built in pairs:
                result.compared += 1
                shown = built.relative_to(html).as_posix()
                if not built.exists():
                    result.differences.append(f"_build/html/{shown}: missing from the built book")
                elif not new.exists():
                    result.differences.append(f"_build/html/{shown}: the rebuild did not produce it")
                elif new.read_bytes() != built.read_bytes():
                    result.differences.append(f"_build/html/{shown}: differs from a rebuild from scratch "
                                              f"({built.stat().st_size} vs {new.stat().st_size} bytes)")
    return result
