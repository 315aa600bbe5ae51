"""A small Sphinx extension for the book: keep every page quiet and offline.

jupyter-book always loads sphinx-thebe, whose inline configuration script is emitted twice and
makes the browser log "Identifier 'THEBE_JS_URL' has already been declared" on every page; the
book runs no live code, so thebe's scripts are dropped from each page.
"""
from __future__ import annotations


def _drop_thebe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    kept = []
    for js in scripts:
        name = str(js)
        body = getattr(js, "attributes", {}).get("body", "") if hasattr(js, "attributes") else ""
        if "thebe" in name.lower() or "THEBE_JS_URL" in body:
            continue
        kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
