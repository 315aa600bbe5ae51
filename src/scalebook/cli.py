"""The `scalebook` command: run notebooks, build the book, list figures and parameters, cite."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from . import __version__
from .errors import ScalebookError

EPILOG = "Each verb has its own --help. Documentation: README.md and the book's 'Rerun' page."


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_run(args) -> int:
    from . import config, execute

    report = config.load()
    if args.all == bool(args.notebook):
        raise ScalebookError("give either a NOTEBOOK or --all")
    if args.all and (args.p or args.params_file):
        raise ScalebookError("-p and --params-file apply to one notebook; use them with NOTEBOOK, not --all")
    names = list(report.notebooks) if args.all else [args.notebook]
    overrides = None
    if args.p:
        from .params import parse_assignments
        overrides = parse_assignments(args.p)
    # Validate every plan before executing anything.
    plans = [execute.plan(n, set_name=args.set, params_file=args.params_file, overrides=overrides,
                          cwd=Path.cwd(), report=report) for n in names]
    t0 = time.monotonic()
    outcomes, failures = execute.run_many(plans, jobs=args.jobs, force=args.force, timeout=args.timeout,
                                          progress=_say)
    cached = sum(o.cached for o in outcomes)
    _say(f"runs: {len(outcomes) - cached} executed, {cached} reused from cache, {len(failures)} failed "
         f"({time.monotonic() - t0:.1f} s)")
    for o in outcomes:
        print(o.run_dir)
    return 1 if failures else 0


def cmd_params(args) -> int:
    from . import config, params

    entry = config.load().notebook(args.notebook)
    declared = params.read_parameters(entry.source)
    if args.json:
        print(json.dumps({n: {"type": p.describe_type(), "default": p.default, "help": p.help}
                          for n, p in declared.items()}, indent=1))
        return 0
    width = max(len(n) for n in declared)
    print(f"Parameters of notebook '{entry.name}' ({entry.source.name}); sets: {', '.join(entry.sets)}")
    for n, p in declared.items():
        print(f"  {n:<{width}}  {p.describe_type():<14} default {p.default!r}\n  {'':<{width}}  {p.help}")
    for set_name, values in entry.sets.items():
        if values:
            print(f"set '{set_name}': " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
    return 0


def cmd_book(args) -> int:
    from . import book

    book.build(force=args.force, progress=_say)
    return 0


def cmd_figures(args) -> int:
    from . import config, execute

    report = config.load()
    rows = []
    for nb in report.notebooks.values():
        run_dir = execute.latest(nb.name)
        prov = json.loads((run_dir / execute.PROVENANCE).read_text()) if run_dir else None
        for fig in nb.figures:
            files = [f"figures/{fig}.{ext}" for ext in ("svg", "png", "vl.json", "html", "json")]
            rows.append({"id": fig, "notebook": nb.name, "set": prov["set"] if prov else None,
                         "run_id": prov["run_id"] if prov else None,
                         "files": [str(run_dir / f) for f in files] if run_dir else [],
                         "published": files})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        state = f"set {r['set']}, run {r['run_id']}" if r["run_id"] else "not run yet"
        print(f"{r['id']}\n  notebook {r['notebook']} ({state})\n  book URL: {r['published'][0]} "
              f"(+ .png .vl.json .html .json)")
        if r["files"]:
            print(f"  run files: {Path(r['files'][0]).parent}/{r['id']}.*")
    return 0


def cmd_cite(args) -> int:
    from . import cite

    print(cite.citation(cite.figure_record(args.figure_id), args.format))
    return 0


def cmd_data(args) -> int:
    from . import datasets

    if args.action == "verify":
        problems = datasets.verify()
        for p in problems:
            print(p)
        print(f"{len(datasets.entries())} datasets checked, {len(problems)} problem(s)")
        return 1 if problems else 0
    names = args.names or [n for n, e in datasets.entries().items() if "generator" in e]
    for n in names:
        print(f"{n}: sha256 {datasets.regenerate(n)}")
    return 0


def cmd_check(args) -> int:
    from .check import run_check

    result = run_check(jobs=args.jobs, progress=_say)
    for d in result.differences:
        print(d)
    verdict = "reproducible" if result.ok else f"{len(result.differences)} difference(s)"
    print(f"check: {result.compared} files compared byte for byte with a rebuild from scratch; {verdict}")
    return 0 if result.ok else 1


def cmd_archive(args) -> int:
    from .archive import write_archive

    path, digest, man = write_archive(args.output)
    print(f"{path}\nsha256 {digest}\n{man['file_count']} files, {len(man['runs'])} runs, commit {man['commit']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scalebook", description=__doc__, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"scalebook {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    p = sub.add_parser("run", help="execute notebook(s) with a validated parameter set (cached by inputs)",
                       description="Execute a notebook (or --all) with papermill into a content-addressed run "
                                   "folder. Unchanged inputs reuse the previous run.")
    p.add_argument("notebook", nargs="?", help="notebook name as in report.yml (e.g. loss_compute)")
    p.add_argument("--all", action="store_true", help="run every notebook of report.yml")
    p.add_argument("--set", default="default", help="named parameter set from report.yml (default: default)")
    p.add_argument("-p", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    p.add_argument("--params-file", type=Path, help="YAML/JSON file of parameter overrides")
    p.add_argument("--force", action="store_true", help="re-execute even if an identical run exists")
    p.add_argument("--jobs", type=int, default=1, help="notebooks to run in parallel with --all (default 1)")
    p.add_argument("--timeout", type=float, help="wall-clock limit per run in seconds (default: report.yml)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("params", help="list a notebook's parameters with type, default and meaning")
    p.add_argument("notebook")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("book", help="stage the latest runs and build the HTML book (never executes notebooks)")
    p.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("figures", help="list every figure id with its notebook, set and files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("cite", help="print the citation of a figure")
    p.add_argument("figure_id")
    p.add_argument("--format", choices=("bibtex", "apa", "cff"), default="bibtex")
    p.set_defaults(func=cmd_cite)

    p = sub.add_parser("check", help="rebuild every run from scratch and compare figures/results byte for byte; "
                                     "audit the HTML for off-machine references")
    p.add_argument("--jobs", type=int, default=1, help="notebooks to re-execute in parallel")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("archive", help="write the built book as a tarball with a manifest and its sha256")
    p.add_argument("--output", type=Path, help="tarball path (default: _build/scalebook-<version>-<commit>.tar.gz)")
    p.set_defaults(func=cmd_archive)

    p = sub.add_parser("data", help="verify or regenerate the bundled datasets")
    p.add_argument("action", choices=("verify", "regenerate"))
    p.add_argument("names", nargs="*", help="datasets to regenerate (default: all simulated)")
    p.set_defaults(func=cmd_data)
    return parser


def _terminate(signum, frame):
    # SIGTERM behaves like Ctrl-C so that every cleanup path (temporary run folders, kernels) runs.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except ScalebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: no partial run or book was kept; the last good ones are unchanged", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
