"""Grading workers: long-lived processes that grade one submission after another.

    python -m autograder.worker --limits JSON [--no-bwrap] [--preload numpy,torch]

A worker holds a :class:`~autograder.engine.Grader` (nbgrader imported once, a kernel prepared ahead
of each submission) and serves requests on its standard input, one JSON object per line; it answers
each with one JSON line on the standard output it had at start-up. Its first line,
``{"ready": true, "note": TEXT}``, says that its first kernel is prepared (the note, usually empty,
says why grading will be slower than it could be). Everything else the process or its libraries
print goes to its standard error (a log file of the parent's choosing).

A request::

    {"template": PATH, "assignment_id": ID, "student_id": ID, "notebook": BASE64,
     "preload": [MODULE, ...]}

The answer::

    {"result": {...Result...}, "feedback": HTML or null, "log": TEXT}

:class:`WorkerProcess` is the parent's handle on one worker. It enforces the wall limit from
outside as well: a worker that does not answer in time (a hang inside nbgrader itself) is killed
with everything it started, and a fresh one takes its place. A pool waits for its workers to be ready
(:meth:`WorkerProcess.wait_ready`) before it hands out the first submission.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import IO, Any

from autograder.engine import Grader, Outcome, Result
from autograder.settings import Limits

# Seconds a worker may take beyond the wall limit (its own watchdog stops the kernel at the limit).
GRACE_SECONDS = 30


def make_request(template: Path, assignment_id: str, student_id: str, notebook: bytes,
                 preload: list[str] | None = None) -> dict[str, Any]:
    """A grading request for a worker (JSON-serialisable)."""
    return {"template": str(template), "assignment_id": assignment_id, "student_id": student_id,
            "notebook": base64.b64encode(notebook).decode("ascii"), "preload": list(preload or [])}


def answer(outcome: Outcome) -> dict[str, Any]:
    return {"result": dataclasses.asdict(outcome.result), "feedback": outcome.feedback, "log": outcome.log}


def serve(requests: IO[str], answers: IO[str], limits: Limits, use_bwrap: bool, preload: list[str]) -> None:
    """Grade every request read from ``requests``; write one answer line per request to ``answers``."""
    with tempfile.TemporaryDirectory(prefix="grader-") as scratch:
        grader = Grader(Path(scratch), limits, use_bwrap)
        if preload:
            grader.prepare(preload)
        answers.write(json.dumps({"ready": True, "note": grader.note}) + "\n")
        answers.flush()
        try:
            for line in requests:
                request = json.loads(line)
                outcome = grader.grade(Path(request["template"]), request["assignment_id"],
                                       request["student_id"], base64.b64decode(request["notebook"]),
                                       request.get("preload", ()))
                answers.write(json.dumps(answer(outcome)) + "\n")
                answers.flush()
        finally:
            grader.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", required=True, help="the Limits as JSON")
    parser.add_argument("--no-bwrap", action="store_true")
    parser.add_argument("--preload", default="", help="modules to import in the first kernel")
    args = parser.parse_args(argv)
    # Answers go to the original standard output; anything else printed there goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    warnings.simplefilter("ignore")  # SQLAlchemy and jupyter_client warnings are noise here
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    limits = Limits(**json.loads(args.limits))
    serve(sys.stdin, answers, limits, not args.no_bwrap, [m for m in args.preload.split(",") if m])


class WorkerProcess:
    """The parent's handle on one worker process (started on first use, restarted when it fails)."""

    def __init__(self, limits: Limits, use_bwrap: bool, log: Path, preload: list[str] | None = None) -> None:
        self.limits = limits
        self.use_bwrap = use_bwrap
        self.log = log
        self.preload = preload or []
        self._process: subprocess.Popen | None = None
        self._ready = False
        self.note = ""  # from the worker's ready line
        self._killed = threading.Event()

    def _start(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "autograder.worker", "--limits",
                   json.dumps(dataclasses.asdict(self.limits)), "--preload", ",".join(self.preload)]
        if not self.use_bwrap:
            command.append("--no-bwrap")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                    text=True, start_new_session=True)

    def start(self) -> None:
        """Start the worker now (it prepares its first kernel while the parent does other work)."""
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
            self._ready = False

    def _read_line(self, process: subprocess.Popen, request: dict[str, Any] | None) -> str:
        """Send ``request`` (if any) and read one line, within the wall limit plus a grace period;
        an empty string if the worker died or was killed for overrunning."""
        self._killed.clear()
        timer = threading.Timer(self.limits.wall_seconds + GRACE_SECONDS, self._kill)
        timer.start()
        try:
            if request is not None:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            return process.stdout.readline()
        except (BrokenPipeError, OSError):
            return ""
        finally:
            timer.cancel()

    def wait_ready(self) -> bool:
        """Start the worker if needed and wait until its first kernel is prepared; False if it failed."""
        self.start()
        if not self._ready:
            line = self._read_line(self._process, None)
            self._ready = bool(line)
            if self._ready:
                self.note = json.loads(line).get("note", "")
            else:
                self._discard()
        return self._ready

    def _discard(self) -> None:
        """Kill the worker process with everything it started, and forget it."""
        self._kill()
        self._process.wait()
        self._process = None

    def _kill(self) -> None:
        self._killed.set()
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)

    def grade(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request``; return the worker's answer, or a row saying why there is none."""
        result = Result(request["student_id"], request["assignment_id"])
        if not self.wait_ready():
            result.status = "grader error"
            result.detail = "the grading process could not start"
            return {"result": dataclasses.asdict(result), "feedback": None, "log": f"see {self.log}"}
        process = self._process
        line = self._read_line(process, request)
        if line:
            return json.loads(line)
        overran = self._killed.is_set()
        self._discard()
        if overran:
            result.status = "timeout"
            result.detail = f"stopped after the wall limit of {self.limits.wall_seconds} s"
        else:
            result.status = "kernel died"
            result.detail = "the grading process died while grading this notebook"
        return {"result": dataclasses.asdict(result), "feedback": None,
                "log": f"worker exited with status {process.returncode}; see {self.log}"}

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._discard()
        self._process = None


if __name__ == "__main__":
    main()
