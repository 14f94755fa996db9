"""Serve MathJax from the built book itself, so math renders without a network connection.

Sphinx's default ``mathjax_path`` loads MathJax from a CDN: a reader offline (or a machine without
internet, like the course's CI) sees raw ``\\(...\\)``. The pinned PyPI package
``django-static-mathjax`` ships MathJax 3's browser build; this extension copies its ``es5/``
folder into ``_build/html/_static/mathjax/`` and points Sphinx at it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx

MATHJAX_SCRIPT = "mathjax/es5/tex-mml-chtml.js"  # relative to _static/


def _mathjax_es5() -> Path:
    import mathjax  # the django-static-mathjax package; it needs no Django to be imported

    folder = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    if not (folder / "tex-mml-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax's browser build is missing from {folder}")
    return folder


def _use_local_mathjax(app: Sphinx, config) -> None:
    config.mathjax_path = MATHJAX_SCRIPT


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        shutil.copytree(_mathjax_es5(), Path(app.outdir) / "_static" / "mathjax" / "es5", dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    _mathjax_es5()  # fail early, with a clear message, if the package is not installed
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
