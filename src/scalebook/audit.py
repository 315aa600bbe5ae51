"""Audit the built book for anything that would load from off the machine, or that names this machine.

A reader offline (or in ten years) must see every page and figure. Any `<script src>`,
`<link href>`, `<img src>`, `<iframe src>`, CSS `@import`/`url()` pointing at `http(s)://` or
a protocol-relative `//host` is a finding. Plain `<a href>` links are navigation, not loads.

A published page or notebook that shows where the book was built (a warning's file name, papermill's
absolute paths) is not reproducible elsewhere and exposes the builder's file system: `machine_paths`
finds the repository's absolute path in the pages, notebooks and JSON files of the built site.
"""
from __future__ import annotations

import re
from pathlib import Path

TAG = re.compile(r"<(script|link|img|iframe|source|video|audio|embed)\b([^>]*)>", re.IGNORECASE)
ATTR = re.compile(r"""\b(src|href|rel)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
NOT_LOADED = {"canonical", "alternate", "author", "license", "next", "prev", "search", "index"}
CSS_REMOTE = re.compile(r"""(@import\s+(?:url\()?|url\()\s*["']?((?:https?:)?//[^"')\s]+)""", re.IGNORECASE)


def remote_references(html_dir: Path) -> list[str]:
    """Every off-machine load in the built site, as 'file: tag -> url'."""
    findings = []
    for f in sorted(html_dir.rglob("*")):
        if f.suffix not in (".html", ".css") or not f.is_file():
            continue
        # Interactive figure files inline the Vega libraries, whose code mentions URLs it never loads
        # here; they are checked by the browser test instead.
        if f.suffix == ".html" and f.parent.name == "figures":
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        rel = f.relative_to(html_dir).as_posix()
        if f.suffix == ".html":
            for tag, attrs in TAG.findall(text):
                found = {k.lower(): v for k, v in ATTR.findall(attrs)}
                if tag.lower() == "link" and found.get("rel", "").lower() in NOT_LOADED:
                    continue
                url = found.get("src") or found.get("href") or ""
                if REMOTE.match(url):
                    findings.append(f"{rel}: <{tag.lower()}> loads {url}")
        for _kw, url in CSS_REMOTE.findall(text):
            findings.append(f"{rel}: CSS loads {url}")
    return findings


def machine_paths(html_dir: Path, root: Path) -> list[str]:
    """Every page, notebook or JSON file of the built site that contains `root`'s absolute path."""
    needle = str(root.resolve())
    if len(Path(needle).parts) < 3:  # "/" or "/x": too short to tell from ordinary text
        return []
    findings = []
    for f in sorted(html_dir.rglob("*")):
        if f.suffix not in (".html", ".ipynb", ".json", ".txt", ".md") or not f.is_file():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        at = text.find(needle)
        if at >= 0:
            line = text.count("\n", 0, at) + 1
            findings.append(f"{f.relative_to(html_dir).as_posix()}, line {line}: contains this machine's path "
                            f"{needle}")
    return findings
