"""JupyterLab's Validate button: nbgrader's extensions are enabled and its validator works here."""

from __future__ import annotations

import os
import subprocess

import nbformat
from conftest import EXERCISES, ROOT, solved_release

BIN = ROOT / ".venv" / "bin"
ASSIGNMENT = "ex01_attention_basics"


def run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_nbgrader_extensions_are_enabled():
    lab = run("jupyter", "labextension", "list")
    assert "@jupyter/nbgrader" in lab.stdout + lab.stderr
    server = run("jupyter", "server", "extension", "list")
    assert "nbgrader.server_extensions.validate_assignment" in server.stdout + server.stderr


def test_validate_fails_an_untouched_notebook_and_passes_a_solved_one(tmp_path):
    untouched = run("nbgrader", "validate", str(EXERCISES / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), cwd=tmp_path)
    assert "VALIDATION FAILED" in untouched.stdout, untouched.stdout[-2000:]
    solved = tmp_path / f"{ASSIGNMENT}.ipynb"
    nbformat.write(solved_release(ASSIGNMENT), solved)
    passed = run("nbgrader", "validate", str(solved), cwd=tmp_path)
    assert "Success! Your notebook passes all the tests." in passed.stdout, passed.stdout[-2000:]
    assert not list(tmp_path.glob("gradebook.db")), "nbgrader left a stray gradebook"
