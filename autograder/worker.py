"""Grade one submission in a process of its own (started by :mod:`autograder.grade`).

Children are forked from a *forkserver* that has imported nbgrader once, so a submission does not
pay nbgrader's ~2 s import. Each child starts its own session (so the grader can kill it and
everything it started), sends its output to a log file, and writes the
:class:`~autograder.engine.Result` as JSON. Whatever goes wrong inside nbgrader becomes a status in
that result; only a kill from outside leaves no result file.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from autograder.engine import GradingError, Result, grade
from autograder.settings import Limits

PRELOAD = ["autograder.engine", "nbgrader.apps", "nbgrader.api", "nbconvert", "nbclient", "jupyter_client"]


@dataclass(frozen=True)
class Task:
    """Everything a child needs to grade one submission."""

    template: Path
    workspace: Path
    assignment_id: str
    student_id: str
    notebook: Path
    feedback: Path
    result: Path
    log: Path
    limits: Limits
    use_bwrap: bool


def run(task: Task) -> None:
    """Body of a child process: grade ``task`` and write its result file."""
    os.setsid()
    fd = os.open(task.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    warnings.simplefilter("ignore")  # SQLAlchemy and jupyter_client warnings are noise here
    logging.disable(logging.WARNING)
    try:
        result = grade(task.template, task.workspace, task.assignment_id, task.student_id, task.notebook,
                       limits=task.limits, use_bwrap=task.use_bwrap, feedback_to=task.feedback)
    except GradingError as error:
        result = Result(task.student_id, task.assignment_id, status="grader error", detail=str(error)[:300])
    task.result.write_text(result.to_json())


def context() -> multiprocessing.context.BaseContext:
    """A forkserver context whose server has nbgrader imported."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    warm_up = ctx.Process(target=os.getpid)  # start the server now, not inside the first job's time
    warm_up.start()
    warm_up.join()
    return ctx
