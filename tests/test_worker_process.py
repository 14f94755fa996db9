"""A grading process that cannot start still gives its submission a row saying so."""

from __future__ import annotations

import subprocess
import sys

from autograder.settings import Limits
from autograder.worker import WorkerProcess, make_request


class BrokenWorker(WorkerProcess):
    """A worker process that exits before it is ready (as one would on a broken installation)."""

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, start_new_session=True)


def test_a_worker_that_cannot_start_gives_a_grader_error_row(tmp_path):
    worker = BrokenWorker(Limits(), use_bwrap=False, log=tmp_path / "worker.log")
    assert not worker.wait_ready()
    answer = worker.grade(make_request(tmp_path, "ex01_attention_basics", "student", b"{}"))
    assert answer["result"]["status"] == "grader error", answer
    assert answer["result"]["student_id"] == "student"
    assert "could not start" in answer["result"]["detail"]
    worker.close()
