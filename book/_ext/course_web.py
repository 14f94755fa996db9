"""What the reader gets from the built book beyond the theme's defaults (issue 13).

- ``book/_static/course.css`` and ``course.js``: small, documented overrides of the pinned theme
  (pydata-sphinx-theme 0.17.1 with sphinx-book-theme 1.3.0): sidebar toggles that work on phones
  and desktops, no page wider than a phone, accessible names the theme gets wrong, readable search
  snippets. Each block names its upstream issue; drop it when a pinned theme release fixes it.
- Each chapter offers its executed notebook (``.ipynb``) in the download menu, beside the ``.md``
  source: the notebook MyST-NB writes to ``_build/jupyter_execute/`` with the outputs of the
  execution cache merged in (with ``execute_notebooks: cache``, MyST-NB 1.4 writes that file
  without outputs when they come from the cache).
- A script that two extensions register twice (sphinx-thebe's ``const THEBE_JS_URL`` config,
  sphinx-togglebutton's selector) is written once, so the console stays clean.
- The bibliography's entries get ``role="listitem"`` inside docutils' ``role="list"``
  (``doc-biblioentry`` is a deprecated ARIA role that axe reports as a critical
  ``aria-required-children`` violation of the list).
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import nbformat
from sphinx.application import Sphinx

STATIC = Path(__file__).resolve().parent.parent / "_static"
EXECUTED = "jupyter_execute"  # MyST-NB's folder of executed notebooks, beside the html output


def _add_static(app: Sphinx, config) -> None:
    if str(STATIC) not in config.html_static_path:
        config.html_static_path.append(str(STATIC))


def _unique_scripts(scripts: list) -> list:
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        filename = getattr(script, "filename", script) or ""  # None and "" both mean an inline script
        key = (str(filename), tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    return unique


def _executed_notebook(app: Sphinx, pagename: str) -> nbformat.NotebookNode | None:
    """The notebook MyST-NB executed for ``pagename``, with its outputs, or None if there is none."""
    path = Path(app.outdir).parent / EXECUTED / f"{pagename}.ipynb"
    if not path.is_file():
        return None
    notebook = nbformat.read(path, as_version=4)
    has_outputs = any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    cache_path = getattr(getattr(app.env, "mystnb_config", None), "execution_cache_path", None)
    if not has_outputs and cache_path:
        from jupyter_cache import get_cache

        with suppress(KeyError):  # not in the cache: offer the notebook as it is
            _, notebook = get_cache(cache_path).merge_match_into_notebook(notebook)
    return notebook


def _clean_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if "script_files" in context:
        context["script_files"] = _unique_scripts(context["script_files"])
    if "body" in context and 'role="doc-biblioentry"' in context["body"]:
        context["body"] = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')


def _offer_notebook(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    # A page whose source is already a notebook offers it as its source; others (MyST Markdown
    # notebooks) offer the notebook MyST-NB executed. sphinx-book-theme reads `ipynb_source`
    # (a path under _sources/) when it builds the download menu (priority 501, after this).
    if doctree is None or str(context.get("page_source_suffix", "")) == ".ipynb":
        return
    notebook = _executed_notebook(app, pagename)
    if notebook is not None:
        target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
        context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _add_static)
    app.add_css_file("course.css")
    app.add_js_file("course.js", defer="defer")
    app.connect("html-page-context", _offer_notebook, priority=400)
    app.connect("html-page-context", _clean_page, priority=900)  # after every other extension
    return {"parallel_read_safe": True, "parallel_write_safe": True}
