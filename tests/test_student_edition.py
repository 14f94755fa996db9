"""The student edition: everything students need, and nothing of the solutions or hidden tests.

The edition is built with the real command. Every file in it is searched for the distinctive lines of
every source notebook's solution and hidden-test regions (a line the book or a release notebook shows
publicly is not a secret). The self-check then runs inside the edition, with the edition's own
``autograder`` package, on a solved and on an untouched notebook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import ASSIGNMENTS, EXERCISES, ROOT, solved_release, source_notebook

REGIONS = [("### BEGIN SOLUTION", "### END SOLUTION"), ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")]
DISTINCTIVE = 20  # characters: shorter lines ("return out", "x = x + 1") identify nothing
FORBIDDEN = ["solutions", "tests", "grading", "CONTRIBUTING.md", "scripts/test", "scripts/lock"]


def regions(source: str) -> list[str]:
    """Lines inside the solution and hidden-test regions of a cell (markers excluded)."""
    lines, inside = [], False
    for line in source.splitlines():
        if any(begin in line for begin, _ in REGIONS):
            inside = True
        elif any(end in line for _, end in REGIONS):
            inside = False
        elif inside:
            lines.append(line.strip())
    return lines


def public_text() -> str:
    """What the course shows publicly anyway: the book's sources and the release notebooks' cells."""
    parts = [p.read_text(errors="replace") for p in (ROOT / "book").rglob("*") if p.is_file()]
    for assignment_id in ASSIGNMENTS:
        notebook = nbformat.read(EXERCISES / assignment_id / f"{assignment_id}.ipynb", as_version=4)
        parts += [cell.source for cell in notebook.cells]
    return "\n".join(parts)


def secret_lines() -> dict[str, str]:
    """{distinctive secret line: the assignment it comes from}."""
    public = public_text()
    secrets = {}
    for assignment_id in ASSIGNMENTS:
        for cell in source_notebook(assignment_id).cells:
            for line in regions(cell.source):
                if len(line) >= DISTINCTIVE and line not in public:
                    secrets[line] = assignment_id
    return secrets


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("edition") / "attention-course-student"
    completed = subprocess.run([sys.executable, "-m", "autograder", "student-edition", str(out),
                                "--exchange-root", "/srv/exchange-for-test"],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return out


def edition_files(edition: Path) -> list[Path]:
    return sorted(p for p in edition.rglob("*") if p.is_file())


def find_leaks(folder: Path, secrets: dict[str, str]) -> list[tuple[str, str, str]]:
    """(file, assignment, line) for every secret line found in any file under ``folder``."""
    leaks = []
    for path in edition_files(folder):
        text = path.read_bytes().decode("utf-8", errors="replace")
        for line, assignment_id in secrets.items():
            if line in text or json.dumps(line)[1:-1] in text:  # notebooks store lines JSON-escaped
                leaks.append((str(path.relative_to(folder)), assignment_id, line))
    return leaks


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    found = secret_lines()
    per_assignment = {a: sum(1 for v in found.values() if v == a) for a in ASSIGNMENTS}
    assert all(per_assignment.values()), f"every exercise should have secret lines: {per_assignment}"
    return found


def test_no_solution_or_hidden_test_line_anywhere(edition, secrets):
    leaks = find_leaks(edition, secrets)
    assert not leaks, "the student edition shows solutions or hidden tests:\n" + "\n".join(
        f"{path}: {assignment_id}: {line}" for path, assignment_id, line in leaks[:20])


def test_the_search_finds_a_planted_leak(tmp_path, secrets):
    """Control: the same search, run on the sources themselves, finds every exercise's secrets."""
    for assignment_id in ASSIGNMENTS:
        (tmp_path / f"{assignment_id}.ipynb").write_bytes(
            (ROOT / "solutions" / assignment_id / f"{assignment_id}.ipynb").read_bytes())
    (tmp_path / "notes.py").write_text(next(iter(secrets)) + "\n")
    found = find_leaks(tmp_path, secrets)
    assert {assignment_id for _, assignment_id, _ in found} == set(ASSIGNMENTS)
    assert any(path == "notes.py" for path, _, _ in found), "a plain-text copy is found too"


def test_nothing_of_the_instructor_side(edition):
    names = {str(p.relative_to(edition)) for p in edition.rglob("*")}
    for forbidden in FORBIDDEN:
        assert not any(n == forbidden or n.startswith(forbidden + "/") for n in names), f"{forbidden} shipped"
    assert not [n for n in names if n.endswith(".db")], "a gradebook was shipped"
    for notebook in edition.rglob("*.ipynb"):
        text = notebook.read_text()
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{notebook.relative_to(edition)} holds '{marker}'"
    shipped = {p.name for p in (edition / "autograder").iterdir()}
    assert shipped == {"__init__.py", "__main__.py", "check.py", "checks.py", "feedback.py", "settings.py"}


def test_what_students_need_is_there(edition):
    for assignment_id in ASSIGNMENTS:
        shipped = edition / "exercises" / assignment_id / f"{assignment_id}.ipynb"
        assert shipped.read_bytes() == (EXERCISES / assignment_id / f"{assignment_id}.ipynb").read_bytes()
    assert (edition / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    pages = toc_pages(yaml.safe_load((edition / "_toc.yml").read_text()))
    assert pages, "the table of contents lists pages"
    missing = [p for p in pages if not list(edition.glob(p + ".*"))]
    assert not missing, f"the book's table of contents names pages the edition lacks: {missing}"
    readme = (edition / "README.md").read_text()
    for needed in ("scripts/setup", "python -m autograder check", "nbgrader submit", "fetch_feedback"):
        assert needed in readme, f"the student README does not mention {needed}"
    config = (edition / "nbgrader_config.py").read_text()
    assert "c.Exchange.root = '/srv/exchange-for-test'" in config
    assert "c.CourseDirectory.course_id = 'attention-course'" in config
    assert subprocess.run(["bash", "-n", str(edition / "scripts" / "setup")]).returncode == 0
    assert os.access(edition / "scripts" / "setup", os.X_OK)


def toc_pages(node) -> list[str]:
    """Every page a Jupyter Book table of contents names (its ``root`` and each ``file``)."""
    if isinstance(node, dict):
        found = [node[k] for k in ("root", "file") if isinstance(node.get(k), str)]
        return found + [p for value in node.values() for p in toc_pages(value)]
    if isinstance(node, list):
        return [p for value in node for p in toc_pages(value)]
    return []


def run_in_edition(edition: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m autograder ...`` inside the edition, importing the edition's own package (as its
    ``pip install -e .`` would): PYTHONPATH reaches the kernel too, so test cells import its checks."""
    env = {**os.environ, "PYTHONPATH": str(edition)}
    return subprocess.run([sys.executable, *args], cwd=edition, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_edition_imports_its_own_package(edition):
    where = run_in_edition(edition, "-c", "import autograder.checks as c; print(c.__file__)")
    assert where.stdout.strip() == str(edition / "autograder" / "checks.py"), where.stdout + where.stderr
    help_text = run_in_edition(edition, "-m", "autograder", "--help").stdout
    assert "{check}" in help_text, f"only the student's command is offered: {help_text}"


def test_self_check_inside_the_edition(edition):
    assignment_id = ASSIGNMENTS[0]
    folder = edition / "exercises" / assignment_id
    release = f"exercises/{assignment_id}/{assignment_id}.ipynb"
    untouched = run_in_edition(edition, "-m", "autograder", "check", release)
    assert untouched.returncode == 1, untouched.stdout + untouched.stderr
    assert "not answered yet" in untouched.stdout
    solved = folder / "solved.ipynb"
    nbformat.write(solved_release(assignment_id), solved)
    try:
        passed = run_in_edition(edition, "-m", "autograder", "check", str(solved.relative_to(edition)))
    finally:
        solved.unlink()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "FAIL" not in passed.stdout


def test_rebuilding_keeps_git_and_refuses_foreign_folders(edition, tmp_path):
    (edition / ".git").mkdir(exist_ok=True)
    (edition / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (edition / "stale.txt").write_text("from an older edition")
    again = subprocess.run([sys.executable, "-m", "autograder", "student-edition", str(edition),
                            "--exchange-root", "/srv/exchange-for-test"],
                           cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (edition / ".git" / "HEAD").is_file() and not (edition / "stale.txt").exists()
    foreign = tmp_path / "my-notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    refused = subprocess.run([sys.executable, "-m", "autograder", "student-edition", str(foreign)],
                             cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert (foreign / "thesis.tex").read_text() == "precious"
    inside = subprocess.run([sys.executable, "-m", "autograder", "student-edition",
                             str(ROOT / "build" / "x")], cwd=ROOT, capture_output=True, text=True)
    assert inside.returncode == 2 and "outside the course folder" in inside.stderr
