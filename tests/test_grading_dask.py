"""Grading on a Dask cluster gives the same grades as grading locally, and a dead worker costs no row.

A scheduler and two workers run as separate processes on the loopback interface (``dask scheduler``
and ``dask worker`` with the course's Dask settings, as the README starts them); the class is graded
once locally and once through them with ``python -m autograder grade --scheduler``.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, release_notebook, solved_release
from corpus import with_prefix

ASSIGNMENT = "ex01_attention_basics"
LIMITS = ["--cell-timeout", "5", "--wall-limit", "30"]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A Dask scheduler and workers started as separate processes, stopped at the end."""

    def __init__(self, tmp: Path, workers: int, env: dict[str, str] | None = None) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.env = {**os.environ, "DASK_CONFIG": str(ROOT / "autograder" / "dask.yaml"), **(env or {})}
        self.tmp = tmp
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port",
                                                   self.address.rsplit(":", 1)[1], "--no-dashboard"])
        self.workers = [self._start(f"worker{i}", ["worker", self.address, "--nthreads", "1", "--no-nanny",
                                                   "--no-dashboard", "--name", f"w{i}",
                                                   "--local-directory", str(tmp / f"w{i}")])
                        for i in range(workers)]
        self._wait_for_workers(workers)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process's life
        return subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT,
                                env=self.env, cwd=self.tmp, start_new_session=True)

    def _wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(count, timeout=120)

    def wait_until_busy(self, timeout: float = 300) -> None:
        """Return once a task is running on some worker."""
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            deadline = time.monotonic() + timeout
            while not any(client.processing().values()):
                assert time.monotonic() < deadline, "no task started on the cluster"
                time.sleep(0.2)

    def kill_worker(self, index: int) -> None:
        os.killpg(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait()

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def write_class(folder: Path, notebooks: dict[str, nbformat.NotebookNode | str]) -> Path:
    for student, notebook in notebooks.items():
        target = folder / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        if isinstance(notebook, str):
            target.write_text(notebook)
        else:
            nbformat.write(notebook, target)
    return folder


def grade(submissions: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
               "--assignment", ASSIGNMENT, *LIMITS, *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    return output


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "grades.csv") as handle:
        return {r["student_id"]: r for r in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def mixed_class(tmp_path_factory) -> Path:
    solved = solved_release(ASSIGNMENT)
    return write_class(tmp_path_factory.mktemp("class"), {
        "correct": solved,
        "correct_too": solved,
        "untouched": release_notebook(ASSIGNMENT),
        "endless": with_prefix(solved, "while True:\n    pass"),
        "crashing": with_prefix(solved, "import os\nos._exit(3)"),
        "malformed": '{"cells": [',
    })


@pytest.fixture(scope="module")
def local_rows(mixed_class, tmp_path_factory) -> dict[str, dict[str, str]]:
    out = tmp_path_factory.mktemp("local")
    finish(grade(mixed_class, out, "--workers", "2"))
    return rows(out)


def test_dask_run_gives_the_same_grades_as_a_local_run(mixed_class, local_rows, tmp_path):
    assert {r["status"] for r in local_rows.values()} >= {"graded", "timeout", "kernel died",
                                                         "malformed notebook"}
    cluster = Cluster(tmp_path, workers=2)
    try:
        out = tmp_path / "out"
        output = finish(grade(mixed_class, out, "--scheduler", cluster.address))
    finally:
        cluster.stop()
    assert f"with the Dask cluster at {cluster.address}" in output
    assert rows(out) == local_rows
    for student in local_rows:
        page = out / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
        assert page.is_file(), f"no feedback for {student}"


def test_a_worker_killed_during_the_run_loses_nothing(mixed_class, local_rows, tmp_path):
    cluster = Cluster(tmp_path, workers=2)
    try:
        out = tmp_path / "out"
        run = grade(mixed_class, out, "--scheduler", cluster.address)
        lines = []
        for line in run.stdout:  # kill a worker as soon as grading is under way
            lines.append(line)
            if line.startswith("[1/"):
                cluster.kill_worker(0)
                break
        output = "".join(lines) + finish(run)
    finally:
        cluster.stop()
    assert cluster.workers[0].returncode is not None, "the worker should have been killed"
    assert rows(out) == local_rows, output


def test_a_submission_that_keeps_killing_workers_gets_a_row(tmp_path):
    """With no retries allowed, the worker's death ends the task: the run still writes its row."""
    submissions = write_class(tmp_path / "class", {"slow": with_prefix(
        solved_release(ASSIGNMENT), "import time\ntime.sleep(25)")})
    cluster = Cluster(tmp_path, workers=1, env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    try:
        run = grade(submissions, tmp_path / "out", "--scheduler", cluster.address)
        cluster.wait_until_busy()  # the notebook sleeps for 25 s: the task is on the worker
        cluster.kill_worker(0)
        finish(run)
    finally:
        cluster.stop()
    row = rows(tmp_path / "out")["slow"]
    assert row["status"] == "kernel died" and "Dask workers" in row["detail"], row


def test_the_scheduler_reads_a_task_without_importing_the_grader():
    """The scheduler unpickles each task, importing the module of its function: that import must stay
    light, or the first task of every run waits for nbgrader to be imported in the scheduler."""
    probe = ("import sys, autograder.dask_backend; "
             "print(sorted(m for m in ('nbgrader', 'nbformat', 'torch', 'autograder.engine', "
             "'autograder.worker') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]", f"importing autograder.dask_backend imported {loaded}"
