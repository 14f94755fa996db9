"""The book builds with every chapter executed, zero Sphinx warnings, and no solutions in it.

The browser tests (``test_browser_book.py``) use the same build: :func:`built_book` builds once per
test session.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup
from conftest import ROOT

HTML = ROOT / "_build" / "html"
MATPLOTLIBRC = ROOT / "book" / "matplotlibrc"


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc["parts"]:
        walk(part["chapters"])
    return files


@functools.cache
def built_book() -> subprocess.CompletedProcess:
    """Build the book (once per test session; execution is cached between builds)."""
    completed = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "jupyter-book"), "build", ".", "--warningiserror", "--nitpick",
         "--keep-going"], cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-6000:]
    return completed


@pytest.fixture(scope="module")
def build():
    return built_book()


def html_pages() -> list[str]:
    """Every page a reader can reach: the table of contents, the index and the search page."""
    return [f"{name}.html" for name in toc_files()] + ["genindex.html", "search.html"]


def test_every_page_is_built(build):
    for name in toc_files():
        assert (HTML / f"{name}.html").is_file(), f"{name} missing from the built book"


def test_no_solutions_or_hidden_tests_in_the_book(build):
    for page in HTML.rglob("*.html"):
        text = page.read_text(errors="replace")
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            assert marker not in text, f"{page} shows '{marker}'"
    assert not (HTML / "solutions").exists()


def test_chapters_are_executed_with_figures(build):
    for name in toc_files():
        if name.startswith("book/ch"):
            text = (HTML / f"{name}.html").read_text()
            assert "cell_output" in text, f"{name} has no executed output"
            assert "<img" in text, f"{name} has no figure"


def test_bibliography_is_rendered(build):
    text = (HTML / "book" / "bibliography.html").read_text()
    assert "Vaswani" in text


def test_math_renders_offline(build):
    """MathJax is served from the book (book/_ext/offline_mathjax.py), not from a CDN."""
    assert (HTML / "_static" / "mathjax" / "es5" / "tex-mml-chtml.js").is_file()
    text = (HTML / "book" / "ch01_human_to_machine_attention.html").read_text()
    # (a rebuild over an existing _build/html adds Sphinx's ?v=checksum)
    assert re.search(r'src="\.\./_static/mathjax/es5/tex-mml-chtml\.js(\?v=[0-9a-f]+)?"', text)
    assert "cdn.jsdelivr.net/npm/mathjax" not in text


def _anchors(page) -> set[str]:
    soup = BeautifulSoup(page.read_text(errors="replace"), "html.parser")
    named = {tag["name"] for tag in soup.find_all("a", attrs={"name": True})}
    return {tag["id"] for tag in soup.find_all(id=True)} | named


def test_internal_links_and_anchors_resolve(build):
    """Every link between pages of the book reaches a file, and its #anchor an element of that page."""
    anchors: dict = {}
    broken, checked = [], 0
    for page in sorted(HTML.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        here = page.relative_to(HTML).as_posix()
        soup = BeautifulSoup(page.read_text(errors="replace"), "html.parser")
        for link in soup.find_all("a", href=True):
            href = link["href"]
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(here), unquote(parts.path))) \
                if parts.path else here
            checked += 1
            target_file = HTML / target
            if not target_file.is_file():
                broken.append(f"{here}: {href} (no file {target})")
                continue
            if parts.fragment and target.endswith(".html"):
                if target not in anchors:
                    anchors[target] = _anchors(target_file)
                if unquote(parts.fragment) not in anchors[target]:
                    broken.append(f"{here}: {href} (no #{parts.fragment} in {target})")
    assert checked > 100, f"only {checked} internal links found: is the book built?"
    assert not broken, f"{len(broken)} of {checked} internal links are broken:\n" + "\n".join(broken[:40])


def test_chapters_download_as_executed_notebooks(build):
    """The download menu of every chapter offers the notebook MyST-NB executed, outputs included."""
    for name in toc_files():
        if not name.startswith("book/ch"):
            continue
        text = (HTML / f"{name}.html").read_text()
        href = f"_sources/{name}.ipynb"
        assert href in text and "download-notebook-button" in text, f"{name}: no .ipynb in the download menu"
        notebook = json.loads((HTML / href).read_text())
        outputs = [o for c in notebook["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{href} has no executed figures"


def test_bibliography_has_no_raw_tex(build):
    text = BeautifulSoup((HTML / "book" / "bibliography.html").read_text(), "html.parser")
    body = text.find(attrs={"role": "main"}).get_text()
    assert not re.search(r"\$|\\[A-Za-z]+\{|\\\(", body), "raw TeX in the bibliography"


def style_min_font_pt(rc: Path = MATPLOTLIBRC) -> float:
    """The smallest font size the course style sets (named sizes scale font.size, as in Matplotlib)."""
    scale = {"xx-small": 0.579, "x-small": 0.694, "small": 0.833, "medium": 1.0, "large": 1.2,
             "x-large": 1.44, "xx-large": 1.728, "larger": 1.2, "smaller": 0.833}
    values = {}
    for line in rc.read_text().splitlines():
        key, _, value = line.split("#", 1)[0].partition(":")
        if key.strip().endswith("size") and not key.strip().startswith("figure.fig"):
            values[key.strip()] = value.strip()
    base = float(values.get("font.size", 10))
    return min(float(v) if re.fullmatch(r"[0-9.]+", v) else base * scale.get(v, 1.0) for v in values.values())


def test_course_figure_style_applies_where_chapters_execute():
    """book/matplotlibrc is the style of every chapter's figures: MyST-NB's executor (jupyter-cache)
    runs chapters in book/, where Matplotlib finds it. And the style keeps its promise: at most
    7 inches wide at 100 dpi (the ~700 px text column), text of at least 10 pt."""
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import json, matplotlib\n"
        "rc = matplotlib.rcParams\n"
        "print(json.dumps({'file': matplotlib.matplotlib_fname(), 'figsize': rc['figure.figsize'],"
        " 'dpi': rc['figure.dpi']}))")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    result = single_nb_execution(notebook, cwd=str(ROOT / "book"), timeout=120, allow_errors=False)
    assert result.err is None, result.err
    seen = json.loads(notebook.cells[0].outputs[0]["text"])
    assert (ROOT / "book" / seen["file"]).resolve() == MATPLOTLIBRC.resolve(), seen  # relative to book/
    assert seen["figsize"][0] <= 7.0 and seen["dpi"] == 100, seen
    assert style_min_font_pt() >= 10
