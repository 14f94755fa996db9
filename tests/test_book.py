"""The book builds with every chapter executed, zero Sphinx warnings, and no solutions in it."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from conftest import ROOT

HTML = ROOT / "_build" / "html"


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


@pytest.fixture(scope="module")
def build():
    completed = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "jupyter-book"), "build", ".", "--warningiserror", "--nitpick",
         "--keep-going"], cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-6000:]
    return completed


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
    assert 'src="../_static/mathjax/es5/tex-mml-chtml.js"' in text
    assert "cdn.jsdelivr.net/npm/mathjax" not in text
