"""Kernels forked from a kernel factory: isolated from each other and from the factory, stopped with
everything they started, and the one-by-one bubblewrap kernels used where forks cannot be isolated."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from conftest import solved_release
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from autograder.engine import Grader, PreparedKernel, make_template, setup_imports
from autograder.grade import sandbox_available
from autograder.kernel_factory import KernelFactory
from autograder.settings import Limits

needs_bwrap = pytest.mark.skipif(not sandbox_available(), reason="bubblewrap is not available here")

# Run in a forked kernel while another kernel of the same factory is alive: everything it can learn
# or reach of other processes and folders, as JSON.
PROBE = r'''
import ctypes, glob, json, os, socket
report = {"pid": os.getpid(), "reachable": [], "folders": glob.glob("{root}/*"), "network": False}
report["capabilities"] = [line.split()[1] for line in open("/proc/self/status") if line.startswith("Cap")]
for entry in os.listdir("/proc"):
    if not entry.isdigit() or entry == os.readlink("/proc/self"):  # itself, as /proc numbers it
        continue
    for what in ("root", "cwd", "environ", "mem"):
        try:
            if what in ("root", "cwd"):
                os.listdir(f"/proc/{entry}/{what}")
            else:
                open(f"/proc/{entry}/{what}", "rb").read(1)
            report["reachable"].append(f"/proc/{entry}/{what}")
        except OSError:
            pass
try:
    socket.create_connection(("10.0.0.1", 80), timeout=1)
    report["network"] = True
except OSError:
    pass
libc = ctypes.CDLL(None, use_errno=True)
report["umount"] = libc.umount2(b"{root}", 2)
report["kernel_pid_1"] = os.getpid() == 1
print(json.dumps(report))
'''


def run_code(kernel: PreparedKernel, code: str) -> str:
    notebook = new_notebook(cells=[new_code_cell(code)])
    NotebookClient(notebook, km=kernel.km, timeout=30, resources={"metadata": {"path": str(kernel.work)}}
                   ).execute()
    return "".join(o.get("text", "") for o in notebook.cells[0].outputs)


def sleepers() -> list[Path]:
    """Processes running the test's ``time.sleep(600)``."""
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if b"time.sleep(600)" in path.read_bytes():
                found.append(path)
    return found


@pytest.fixture
def short_tmp():
    """A folder with a short path: a kernel's Unix sockets must have paths under 108 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="kf-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def factory(short_tmp):
    made = KernelFactory(short_tmp / "kernels", 2048, sandbox_available(), ["numpy"],
                         short_tmp / "factory.log")
    yield made
    made.close()


@needs_bwrap
def test_a_forked_kernel_sees_and_reaches_nothing_of_other_kernels(factory):
    assert factory.isolated()
    other = PreparedKernel(factory.root / "k0", Limits(), True, ["numpy"], factory)
    kernel = PreparedKernel(factory.root / "k1", Limits(), True, ["numpy"], factory)
    try:
        (other.work / "secret.txt").write_text("another student's file")
        report = json.loads(run_code(kernel, PROBE.replace("{root}", str(factory.root))))
        assert report["folders"] == [str(factory.root / "k1")], "other kernels' folders are visible"
        assert report["reachable"] == [], "another process's /proc entries are open to the kernel"
        assert all(int(mask, 16) == 0 for mask in report["capabilities"]), report["capabilities"]
        assert report["umount"] != 0, "the kernel could uncover the other kernels' folders"
        assert not report["network"]
        assert report["kernel_pid_1"], "the kernel should be process 1 of its own PID namespace"
        assert other.km.provisioner.process.poll() is None, "the probe disturbed the other kernel"
        assert run_code(other, "print(open('secret.txt').read())").strip() == "another student's file"
    finally:
        kernel.close()
        other.close()


def test_killing_a_kernel_stops_what_it_started(factory):
    kernel = PreparedKernel(factory.root / "k0", Limits(), sandbox_available(), ["numpy"], factory)
    try:
        run_code(kernel, "import subprocess, sys\n"
                         "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
                         "open('child.pid', 'w').write(str(child.pid))")
        process = kernel.km.provisioner.process
        assert process.poll() is None
        kernel.kill()
        assert process.poll() is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sleepers():
            time.sleep(0.1)
        assert not sleepers(), "a process the kernel started survived it"
    finally:
        kernel.close()


def test_a_kernel_that_exits_is_reported_dead(factory):
    kernel = PreparedKernel(factory.root / "k0", Limits(), sandbox_available(), ["numpy"], factory)
    try:
        with pytest.raises(Exception, match="(?i)dead|died"):
            run_code(kernel, "import os; os._exit(3)")
        assert kernel.km.provisioner.process.poll() is not None
    finally:
        kernel.close()


def test_grading_where_kernels_cannot_be_forked_in_isolation(short_tmp):
    """Where nested namespaces are forbidden (e.g. AppArmor on Ubuntu 24.04), each kernel is started
    on its own, as before the factory existed; the grades are the same."""
    assignment = "ex01_attention_basics"
    template = make_template(assignment, short_tmp / "template")
    notebook = nbformat.writes(solved_release(assignment)).encode()
    scores = []
    for forking in (True, False):
        grader = Grader(short_tmp / f"scratch-{forking}", Limits(), sandbox_available())
        grader.note = "" if forking else "forking turned off by the test"
        try:
            outcome = grader.grade(template, assignment, "alice", notebook, setup_imports(assignment))
            assert (grader._factory is not None) == forking
        finally:
            grader.close()
        scores.append((outcome.result.status, outcome.result.score, outcome.result.max_score))
        shutil.rmtree(short_tmp / f"scratch-{forking}", ignore_errors=True)
    assert scores[0] == scores[1] and scores[0][1] == scores[0][2] > 0, scores


@needs_bwrap
def test_the_instructor_is_told_when_kernels_cannot_be_forked(short_tmp, monkeypatch):
    """A worker whose factory cannot isolate its kernels says so in its ready line, and the grading
    command prints it, so a slow run is explained where the instructor looks."""
    import io

    from autograder.worker import serve

    monkeypatch.setattr(KernelFactory, "isolated", lambda self: False)
    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))  # the worker's scratch, short for sockets
    answers = io.StringIO()
    serve(io.StringIO(""), answers, Limits(), True, setup_imports("ex03_self_attention"))
    ready = json.loads(answers.getvalue().splitlines()[0])
    assert ready["ready"] is True
    assert "nested namespaces are not available" in ready["note"], ready
    assert "slower" in ready["note"]
