"""Execute notebooks with papermill into content-addressed run folders.

A run is identified by a hash of everything that can change its output: the notebook source,
the resolved parameters, the `src/scalebook` tree, the data files its `*_path` parameters
name, the lock file, its figure registry and the Python version. An existing run with the same
id is reused; otherwise the notebook executes in a worker process (its own process group, so a
time limit or Ctrl-C stops the kernel too) inside a temporary folder that is promoted to
`_build/runs/<notebook>/<run_id>/` only on success. A failed, interrupted or timed-out run
leaves the last good run and the `latest.json` pointer untouched.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from filelock import FileLock

from . import __version__, config, params, paths, provenance
from .errors import RunError, ScalebookError
from .hashing import files_sha256, json_sha256, path_sha256, sha256_bytes

CONTEXT = "context.json"
ERROR = "error.json"
PROVENANCE = "provenance.json"
RESULTS = "results.json"
LATEST = "latest.json"
HEARTBEAT_S = 30
# Worker processes of runs in flight, so an interrupt of `run_many` can stop them all.
_ACTIVE: set[subprocess.Popen] = set()
_ACTIVE_LOCK = threading.Lock()
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
GRACE_S = 5


@dataclass
class RunPlan:
    entry: config.NotebookEntry
    set_name: str
    parameters: dict
    data: dict[str, str]
    key: dict
    run_id: str

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def run_dir(self) -> Path:
        return paths.runs_dir() / self.name / self.run_id


@dataclass
class RunOutcome:
    plan: RunPlan
    run_dir: Path
    cached: bool
    duration_s: float


def src_tree_sha256() -> str:
    src = paths.src_dir()
    files = sorted(f for f in src.rglob("*") if f.is_file() and "__pycache__" not in f.parts
                   and f.suffix not in (".pyc",))
    return files_sha256(src, files)


def plan(name: str, *, set_name: str = "default", params_file: Path | None = None,
         overrides: dict[str, str] | None = None, cwd: Path | None = None,
         report: config.ReportConfig | None = None) -> RunPlan:
    """Resolve and validate a run's parameters and compute its id; nothing executes yet."""
    report = report or config.load()
    entry = report.notebook(name)
    if not entry.source.exists():
        raise ScalebookError(f"notebook source {paths.display_path(entry.source)} does not exist")
    layers: list[tuple[str, dict, Path | None]] = [(f"report.yml set '{set_name}'", entry.set_params(set_name), None)]
    if params_file is not None:
        pf = Path(params_file)
        layers.append((f"--params-file {pf}", params.read_params_file(pf), (cwd or Path.cwd()) / pf.parent))
    if overrides:
        layers.append(("-p", overrides, cwd or Path.cwd()))
    return _plan(entry, set_name, layers)


def _plan(entry: config.NotebookEntry, set_name: str, layers: list) -> RunPlan:
    resolved = params.resolve(entry.source, entry.name, layers)
    declared = params.read_parameters(entry.source)
    data = params.data_hashes(declared, resolved)
    lock = paths.lock_file()
    key = {
        "notebook": sha256_bytes(entry.source.read_bytes()),
        "parameters": resolved,
        "src": src_tree_sha256(),
        "data": data,
        "lock": path_sha256(lock) if lock.exists() else None,
        "figures": list(entry.figures),
        "python": sys.version_info[:2],
    }
    return RunPlan(entry, set_name, resolved, data, key, json_sha256(key)[:16])


def plan_from_provenance(prov: dict, *, report: config.ReportConfig | None = None) -> RunPlan:
    """The plan of a recorded run: same notebook, set and parameters (paths as recorded, root-relative)."""
    report = report or config.load()
    entry = report.notebook(prov["notebook"])
    layers = [(f"report.yml set '{prov['set']}'", entry.set_params(prov["set"]), None),
              (f"provenance of run {prov['run_id']}", prov["parameters"], paths.root())]
    return _plan(entry, prov["set"], layers)


def latest(name: str) -> Path | None:
    """The run folder `latest.json` points at for a notebook, if it still exists."""
    pointer = paths.runs_dir() / name / LATEST
    if not pointer.exists():
        return None
    run_dir = paths.runs_dir() / name / json.loads(pointer.read_text())["run_id"]
    return run_dir if (run_dir / PROVENANCE).exists() else None


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _set_latest(p: RunPlan) -> None:
    _write_json_atomic(paths.runs_dir() / p.name / LATEST, {"run_id": p.run_id, "set": p.set_name})


def _clean_stale_tmp(nb_dir: Path) -> None:
    """Remove temporary folders of runs whose process no longer exists (killed with SIGKILL)."""
    for tmp in nb_dir.glob(".tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
        except (ValueError, IndexError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass


def _context(p: RunPlan, report: config.ReportConfig) -> dict:
    git = provenance.git_state()
    return {"notebook": p.name, "set": p.set_name, "run_id": p.run_id, "parameters": p.parameters,
            "data": p.data, "figures": list(p.entry.figures), "commit": git["commit"], "dirty": git["dirty"],
            "report_version": __version__, "report_title": report.title, "base_url": report.base_url,
            "packages": provenance.package_versions()}


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except TypeError:
            proc.wait()


def run(p: RunPlan, *, force: bool = False, timeout: float | None = None,
        progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
        report: config.ReportConfig | None = None) -> RunOutcome:
    """Execute a planned run, or reuse it; promote atomically; update `latest.json`."""
    report = report or config.load()
    nb_dir = paths.runs_dir() / p.name
    nb_dir.mkdir(parents=True, exist_ok=True)
    label = f"{p.name} [{p.set_name}]"
    with FileLock(str(nb_dir / f".{p.run_id}.lock")):
        if (p.run_dir / PROVENANCE).exists() and not force:
            _set_latest(p)
            progress(f"= {label}: cached, run {p.run_id} reused (inputs unchanged)")
            return RunOutcome(p, p.run_dir, True, 0.0)
        _clean_stale_tmp(nb_dir)
        tmp = nb_dir / f".tmp-{p.run_id}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            started = datetime.now(timezone.utc)
            t0 = time.monotonic()
            context = _context(p, report)
            (tmp / CONTEXT).write_text(json.dumps(context, indent=1, sort_keys=True, default=str) + "\n")
            progress(f"> {label}: running (run {p.run_id})")
            limit = timeout if timeout is not None else p.entry.timeout
            env = dict(os.environ, SCALEBOOK_CONTEXT=str(tmp / CONTEXT), SCALEBOOK_ROOT=str(paths.root()),
                       PYTHONHASHSEED="0")
            proc = subprocess.Popen([sys.executable, "-m", "scalebook.execute", str(tmp)], env=env,
                                    cwd=tmp, start_new_session=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            with _ACTIVE_LOCK:
                _ACTIVE.add(proc)
            log = []
            reader = threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True)
            reader.start()
            try:
                while True:
                    try:
                        proc.wait(timeout=HEARTBEAT_S)
                        break
                    except subprocess.TimeoutExpired:
                        elapsed = time.monotonic() - t0
                        if elapsed > limit:
                            _kill_group(proc)
                            raise RunError(f"{label}: stopped after {elapsed:.0f} s, over its time limit of "
                                           f"{limit:.0f} s (report.yml `timeout`, or --timeout); the last good "
                                           f"run is unchanged") from None
                        progress(f"  {label}: still running ({elapsed:.0f} s)")
            except BaseException:
                _kill_group(proc)
                raise
            finally:
                with _ACTIVE_LOCK:
                    _ACTIVE.discard(proc)
            reader.join(timeout=5)
            duration = time.monotonic() - t0
            if proc.returncode != 0:
                raise RunError(_failure_message(p, tmp, b"".join(log).decode(errors="replace")))
            prov = {"run_id": p.run_id, "notebook": p.name, "set": p.set_name, "parameters": p.parameters,
                    "data_sha256": p.data, "commit": context["commit"], "dirty": context["dirty"],
                    "packages": context["packages"], "platform": provenance.platform_info(),
                    "report_version": __version__, "started_utc": started.isoformat(timespec="seconds"),
                    "duration_s": round(duration, 2), "key": p.key}
            (tmp / PROVENANCE).write_text(json.dumps(prov, indent=1, sort_keys=True, default=str) + "\n")
            paths.replace_dir(tmp, p.run_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _set_latest(p)
        progress(f"+ {label}: done in {duration:.1f} s (run {p.run_id})")
        return RunOutcome(p, p.run_dir, False, duration)


def _failure_message(p: RunPlan, tmp: Path, log: str) -> str:
    err_path = tmp / ERROR
    if not err_path.exists():
        return f"{p.name}: the notebook worker failed before executing any cell:\n{log.strip()[-2000:]}"
    err = {k: ANSI.sub("", v) if isinstance(v, str) else v for k, v in json.loads(err_path.read_text()).items()}
    where = ""
    if err.get("cell_index") is not None:
        where = f" in cell {err['cell_index']}"
        if err.get("line"):
            where += f" (the cell starting at line {err['line']} of {paths.display_path(p.entry.source)})"
    head = f"{p.name} [{p.set_name}] failed{where}: {err.get('ename', 'Error')}: {err.get('evalue', '')}"
    if not err.get("user_error") and err.get("traceback"):
        head += "\n" + err["traceback"][-3000:]
    return head + "\nThe last good run and the book are unchanged."


def run_many(plans: list[RunPlan], *, jobs: int = 1, force: bool = False, timeout: float | None = None,
             progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)
             ) -> tuple[list[RunOutcome], list[tuple[RunPlan, Exception]]]:
    """Run independent notebooks, up to `jobs` at once; failures do not stop the others."""
    report = config.load()
    outcomes, failures = [], []

    def one(pl: RunPlan):
        try:
            return pl, run(pl, force=force, timeout=timeout, progress=progress, report=report), None
        except ScalebookError as exc:
            progress(f"! {exc}")
            return pl, None, exc

    if jobs <= 1 or len(plans) <= 1:
        # In the main thread, so Ctrl-C / SIGTERM reach the run directly and clean up.
        results = [one(pl) for pl in plans]
    else:
        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            results = list(pool.map(one, plans))
        except BaseException:
            # Signals arrive in the main thread only: stop every worker so the threads return.
            with _ACTIVE_LOCK:
                active = list(_ACTIVE)
            for proc in active:
                _kill_group(proc)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    for pl, out, exc in results:
        if exc is None:
            outcomes.append(out)
        else:
            failures.append((pl, exc))
    return outcomes, failures


# --- the worker: runs inside its own process group ------------------------------------------

def _cell_line(source_md: str, cell_source: str) -> int | None:
    first = next((ln for ln in cell_source.splitlines() if ln.strip()), None)
    if not first:
        return None
    idx = source_md.find(first)
    return source_md.count("\n", 0, idx) + 1 if idx >= 0 else None


def _worker(tmp: Path) -> int:
    import jupytext
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    ctx = json.loads((tmp / CONTEXT).read_text())
    source = paths.notebooks_dir() / f"{ctx['notebook']}.md"
    nb = jupytext.read(source)
    out = tmp / f"{ctx['notebook']}.ipynb"
    try:
        pm.execute_notebook(nb, str(out), parameters=ctx["parameters"], cwd=str(tmp), kernel_name="python3",
                            progress_bar=False, log_output=False, report_mode=False)
    except PapermillExecutionError as exc:
        user = any(n in exc.ename for n in ("DataError", "ParameterError", "FitError", "ScalebookError"))
        (tmp / ERROR).write_text(json.dumps({
            "cell_index": exc.cell_index, "ename": exc.ename, "evalue": exc.evalue, "user_error": user,
            "line": _cell_line(source.read_text(encoding="utf-8"), exc.source),
            "traceback": "\n".join(exc.traceback) if isinstance(exc.traceback, list) else str(exc.traceback),
        }))
        return 1
    except Exception as exc:  # kernel died, nbformat error: still a clear, recorded failure
        (tmp / ERROR).write_text(json.dumps({"cell_index": None, "ename": type(exc).__name__,
                                             "evalue": str(exc), "user_error": False, "traceback": ""}))
        return 1
    if not (tmp / RESULTS).exists():
        (tmp / ERROR).write_text(json.dumps({"cell_index": None, "ename": "RunError", "user_error": True,
                                             "evalue": "the notebook finished without calling report.save(), "
                                                       "so it recorded no results.json"}))
        return 1
    _without_machine_paths(out, source, ctx)
    return 0


def _without_machine_paths(out: Path, source: Path, ctx: dict) -> None:
    """The executed notebook is published with the run: papermill's absolute input and output paths become
    repository-relative, and so does any path under the repository that a cell printed (a warning's file name)."""
    import nbformat

    nb = nbformat.read(out, as_version=4)
    meta = nb.metadata.setdefault("papermill", {})
    meta["input_path"] = source.relative_to(paths.root()).as_posix()
    meta["output_path"] = paths.display_path(paths.runs_dir() / ctx["notebook"] / ctx["run_id"] / out.name)
    text = nbformat.writes(nb)
    root = json.dumps(str(paths.root()))[1:-1]
    out.write_text(text.replace(root + "/", "").replace(root, "."), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1])))
