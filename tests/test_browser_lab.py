"""A student's session in a real JupyterLab, started by the test and driven in the system's Chromium.

The student opens an exercise whose answers are right but for one plausible mistake (the first one in
``tests/other_solutions/<id>.py`` that a visible test catches), runs every cell, and clicks Validate.
The dialog must show what ``python -m autograder check`` prints for the same notebook: one line per
visible test and the hint of the failing one. JupyterLab runs with the course's configuration (as
``scripts/setup`` installs it): nbgrader's instructor tools are not offered to students.
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from browser import DESKTOP, TIMEOUT_MS, keep_local, launched_chromium, require_browser
from conftest import ASSIGNMENTS, ROOT, nbgrader_meta, solved_release

BIN = ROOT / ".venv" / "bin"
ASSIGNMENT = ASSIGNMENTS[0]
SCREENSHOTS = os.environ.get("COURSE_SCREENSHOTS")  # a folder: save what the student saw there


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _check(notebook: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "check", str(notebook.relative_to(cwd))],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def planted_mistake(folder: Path) -> tuple[Path, str, str]:
    """A release notebook, solved but for one mistake a visible test catches: (path, mistake, report)."""
    wrong = importlib.import_module(f"other_solutions.{ASSIGNMENT}").WRONG
    path = folder / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir(parents=True)
    for name, (answers, _) in wrong.items():
        notebook = solved_release(ASSIGNMENT)
        for cell in notebook.cells:
            if nbgrader_meta(cell).get("solution") and nbgrader_meta(cell)["grade_id"] in answers:
                cell.source = answers[nbgrader_meta(cell)["grade_id"]]
        nbformat.write(notebook, path)
        report = _check(path, folder).stdout
        if "FAIL" in report:
            return path, name, report.strip()
    pytest.fail(f"no mistake in tests/other_solutions/{ASSIGNMENT}.py fails a visible test")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a student's folder, with the course environment's configuration."""
    require_browser()
    home = tmp_path_factory.mktemp("student")
    work = home / "course"
    notebook, mistake, report = planted_mistake(work)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    env.pop("COURSE_JUPYTER_ROLE", None)  # a student
    log = (home / "jupyter.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        try:
            with urllib.request.urlopen(f"{base}api/status?token={token}", timeout=10):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail("JupyterLab did not start:\n" + (home / "jupyter.log").read_text()[-3000:])
            time.sleep(0.5)
    try:
        yield {"base": base, "token": token, "notebook": notebook.relative_to(work).as_posix(),
               "mistake": mistake, "report": report, "log": home / "jupyter.log"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _fail_lines(report: str) -> list[str]:
    return [line.split()[1] for line in report.splitlines() if line.strip().startswith("FAIL")]


PROMPTS = ("() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]"
           ".map((p) => p.textContent)")
RAN = ("() => { const prompts = (" + PROMPTS + ")(); "
       "return /\\d/.test(prompts[0] || '') && !prompts.some((p) => p.includes('*')); }")


def test_student_runs_an_exercise_and_validate_shows_the_check(lab, tmp_path):
    external: list[str] = []
    with launched_chromium() as browser:
        context = browser.new_context(viewport=DESKTOP)
        context.set_default_timeout(TIMEOUT_MS)
        keep_local(context, lab["base"], external)
        page = context.new_page()
        try:
            shown = _student_session(page, lab)
        except Exception as error:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise AssertionError(f"{error}\nprompts: {page.evaluate(PROMPTS)}\nscreenshot: "
                                 f"{tmp_path / 'failure.png'}\nserver log:\n{lab['log'].read_text()[-3000:]}"
                                 ) from error
        finally:
            context.close()

    normalise = lambda text: re.sub(r"\s+", " ", text).strip()  # noqa: E731
    assert normalise(lab["report"]) in normalise(shown), (
        f"the Validate dialog does not show the check's report.\nShown:\n{shown}\n\nCheck:\n{lab['report']}")
    assert _fail_lines(lab["report"]), lab["report"]
    assert len(shown) < 2 * len(lab["report"]) + 500, "the dialog shows more than the check's report"
    assert not external, f"requests left the machine: {external}"
    server_log = lab["log"].read_text()
    assert "Traceback" not in server_log, server_log[-3000:]


def _wait_for_idle_kernel(page, lab) -> None:
    """Until the server reports the notebook's kernel started and idle (the page's indicator says
    "idle" before the kernel exists, and a Run All clicked then runs nothing). Waits through
    Playwright, never by sleeping: the page's requests pass through this process (keep_local)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        answer = page.request.get(f"{lab['base']}api/kernels?token={lab['token']}")
        if answer.ok and any(kernel["execution_state"] == "idle" for kernel in answer.json()):
            return
        page.wait_for_timeout(500)
    raise AssertionError("the notebook's kernel did not start")


def _student_session(page, lab) -> str:
    """Open the notebook, run all cells, click Validate: the text of the dialog."""
    page.goto(f"{lab['base']}lab/tree/{lab['notebook']}?token={lab['token']}")

    # The notebook opens with its kernel; the toolbar has Validate; no nbgrader menu for students.
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for()
    page.locator(".jp-NotebookPanel-toolbar .validate-button").first.wait_for()
    _wait_for_idle_kernel(page, lab)
    menus = page.locator("#jp-menu-panel .lm-MenuBar-itemLabel").all_inner_texts()
    assert "Nbgrader" not in menus, f"students see nbgrader's menu: {menus}"

    # Run every cell (menu Run > Run All Cells), as a student would before checking. Execution
    # stops at the first cell that raises: the test cell that catches the mistake, with its hint.
    page.locator("#jp-menu-panel .lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    page.wait_for_function(RAN)
    assert page.locator(".jp-Notebook .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                        ).count() >= 1, "running the notebook shows no failing test"

    # Validate: nbgrader's button, answered by the course's check (autograder/lab.py).
    page.locator(".jp-NotebookPanel-toolbar .validate-button:visible").first.click()
    dialog = page.locator(".jp-Dialog #validation-message")
    dialog.wait_for()
    assert page.locator("#validation-message p").count() == 0 or not page.locator(
        "#validation-message p").first.is_visible(), "nbgrader's 'The following cell failed:' is shown"
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / "student-validate.png"))
    return dialog.inner_text()
