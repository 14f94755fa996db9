"""JupyterLab for students and instructors: who sees which nbgrader tool, and Validate's checker.

The browser test (test_browser_lab.py) clicks Validate in a real JupyterLab; these tests start the
server only, for each role, and read what it offers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request

import nbformat
import pytest
from conftest import EXERCISES, ROOT, solved_release

from autograder import lab

BIN = ROOT / ".venv" / "bin"
ASSIGNMENT = "ex01_attention_basics"


def run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_nbgrader_extensions_are_installed():
    labextensions = run("jupyter", "labextension", "list")
    assert "@jupyter/nbgrader" in labextensions.stdout + labextensions.stderr
    server = run("jupyter", "server", "extension", "list")
    assert "nbgrader.server_extensions.validate_assignment" in server.stdout + server.stderr
    assert (ROOT / ".venv" / "etc" / "jupyter" / "jupyter_server_config.py").is_file(), \
        "scripts/setup did not install the course's JupyterLab configuration"


def test_the_plugins_the_course_hides_exist():
    """A renamed plugin in a new nbgrader would silently come back: every id the course names exists."""
    static = ROOT / ".venv" / "share" / "jupyter" / "labextensions" / "@jupyter" / "nbgrader" / "static"
    code = "".join(path.read_text(errors="replace") for path in static.glob("*.js"))
    for plugin in lab.PLUGINS:
        if plugin.startswith("@jupyter/nbgrader:"):
            assert f'"{plugin}"' in code, f"nbgrader's JupyterLab extension has no plugin {plugin}"


def test_roles():
    nbgrader = ["formgrader", "create-assignment", "course-list", "assignment-list", "menu"]
    assert lab.disabled_plugins("student") == sorted(
        [f"@jupyter/nbgrader:{name}" for name in nbgrader] + ["@jupyterlab/apputils-extension:announcements"])
    assert "@jupyter/nbgrader:assignment-list" not in lab.disabled_plugins("student-exchange")
    assert lab.disabled_plugins("instructor") == ["@jupyterlab/apputils-extension:announcements"]
    for role in lab.ROLES:
        extensions = lab.server_extensions(role)
        assert extensions["autograder.lab"]
        assert not extensions["nbgrader.server_extensions.validate_assignment"]  # answered by autograder.lab
    assert lab.server_extensions("instructor")["nbgrader.server_extensions.formgrader"]
    assert not lab.server_extensions("student")["nbgrader.server_extensions.formgrader"]
    assert not lab.server_extensions("student")["nbgrader.server_extensions.assignment_list"]


def _get(url: str) -> tuple[int, str]:
    """(HTTP status, body); status 0 while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return 0, ""


@pytest.mark.parametrize("role", ["student", "instructor"])
def test_jupyterlab_offers_each_role_its_tools(role, tmp_path):
    """``jupyter lab`` as the course environment starts it, with COURSE_JUPYTER_ROLE=ROLE."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_hex(8)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(tmp_path),
           "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"), "COURSE_JUPYTER_ROLE": role,
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    argv = [str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}", "--LabApp.extension_manager=readonly",
            *(["--allow-root"] if os.geteuid() == 0 else [])]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while _get(f"{base}api/status?token={token}")[0] != 200:
            assert server.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        status, page = _get(f"{base}lab?token={token}")
        assert status == 200
        data = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page,
                         re.DOTALL)
        config = json.loads(data.group(1))
        hidden = set(config["disabledExtensions"])
        assert set(lab.disabled_plugins(role)) <= hidden
        assert "@jupyter/nbgrader:validate-assignment" not in hidden
        formgrader = _get(f"{base}formgrader?token={token}")[0]
        assert (formgrader == 200) == (role == "instructor"), f"{role}: /formgrader answers {formgrader}"
        assert _get(f"{base}nbgrader_version?version=0.9.6&token={token}")[0] == 200  # Validate's first call
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def test_validate_fails_an_untouched_notebook_and_passes_a_solved_one(tmp_path):
    untouched = run("nbgrader", "validate", str(EXERCISES / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), cwd=tmp_path)
    assert "VALIDATION FAILED" in untouched.stdout, untouched.stdout[-2000:]
    solved = tmp_path / f"{ASSIGNMENT}.ipynb"
    nbformat.write(solved_release(ASSIGNMENT), solved)
    passed = run("nbgrader", "validate", str(solved), cwd=tmp_path)
    assert "Success! Your notebook passes all the tests." in passed.stdout, passed.stdout[-2000:]
    assert not list(tmp_path.glob("gradebook.db")), "nbgrader left a stray gradebook"
