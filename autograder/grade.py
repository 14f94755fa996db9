"""Grade a class: every submission in its own workspace and process, a row for each in grades.csv.

Input layout (nbgrader's ``submitted`` layout)::

    SUBMISSIONS/<student_id>/<assignment_id>/<assignment_id>.ipynb

Output::

    OUT/grades.csv                                   one row per student and assignment
    OUT/feedback/<student>/<assignment>/<assignment>.html
    OUT/summary.txt, OUT/summary.png                 pass rates per test, score distribution
"""

from __future__ import annotations

import csv
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.dask_backend import DaskWorkers
from autograder.engine import Result, assignment_ids, make_template, setup_imports, template_max_score
from autograder.sandbox import bwrap_path
from autograder.settings import Limits
from autograder.summary import write_summary
from autograder.worker import WorkerProcess, make_request

if TYPE_CHECKING:
    from autograder.roster import Roster

FIXED_COLUMNS = ["student_id", "assignment_id", "score", "max_score", "status", "detail"]


@dataclass
class Job:
    """One folder of a submission: what to grade, and anything odd noticed while finding it."""

    student_id: str
    assignment_id: str
    notebook: Path | None
    status: str = ""
    detail: str = ""


def find_jobs(submissions: Path, assignments: list[str], known: list[str] | None = None) -> list[Job]:
    """One job per ``<student>/<assignment>`` folder for the chosen assignments, sorted.

    Two common slips also get a row: a notebook ``<student>/<assignment>.ipynb`` left outside its
    folder is graded and flagged, and a folder that names no assignment of the course (``known``) is
    reported as ``unknown assignment``. Folders of other known assignments are left for their own run.
    """
    known = assignments if known is None else known
    jobs = []
    for student in sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for entry in sorted(p for p in student.iterdir() if not p.name.startswith(".")):
            if entry.is_dir() and entry.name in assignments:
                jobs.append(_job_for(student.name, entry))
            elif entry.is_dir() and entry.name not in known:
                jobs.append(Job(student.name, entry.name, None, "unknown assignment",
                                f"folder {student.name}/{entry.name}/ names no assignment of the course "
                                f"(known: {', '.join(known)})"))
            elif (entry.is_file() and entry.suffix == ".ipynb" and entry.stem in assignments
                  and not (student / entry.stem).is_dir()):
                jobs.append(Job(student.name, entry.stem, entry,
                                detail=f"notebook found at {student.name}/{entry.name}, "
                                       f"not in {student.name}/{entry.stem}/"))
    return jobs


def _job_for(student_id: str, folder: Path) -> Job:
    assignment_id = folder.name
    expected = folder / f"{assignment_id}.ipynb"
    notebooks = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if expected.is_file():
        return Job(student_id, assignment_id, expected)
    if len(notebooks) == 1:
        return Job(student_id, assignment_id, notebooks[0],
                   detail=f"renamed file '{notebooks[0].name}' graded as {expected.name}")
    if not notebooks:
        return Job(student_id, assignment_id, None, "missing notebook",
                   f"no .ipynb file in {student_id}/{assignment_id}/")
    names = ", ".join(p.name for p in notebooks)
    return Job(student_id, assignment_id, None, "several notebooks",
               f"expected {expected.name}, found several notebooks: {names}")


def sandbox_available() -> bool:
    """True if bubblewrap can start a process here (it needs user namespaces or root)."""
    path = bwrap_path()
    if not path:
        return False
    probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "true"], capture_output=True)
    return probe.returncode == 0


def write_status_page(path: Path, result: Result) -> None:
    """Feedback for a submission that could not be graded normally: what happened, in plain words."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback</title></head><body>"
        f"<h1>{escape(result.assignment_id)}: {escape(result.student_id)}</h1>"
        f"<p>Status: <strong>{escape(result.status)}</strong></p><p>{escape(result.detail)}</p>"
        f"<p>Score: {result.score:g} / {result.max_score:g}</p></body></html>"
    )


def record(out: Path, job: Job, answer: dict, max_score: float) -> Result:
    """Turn a worker's answer into the job's row; write its feedback page (and log, if it failed)."""
    result = Result(**answer["result"])
    result.max_score = result.max_score or max_score
    if job.detail:
        result.detail = f"{job.detail}; {result.detail}"
    feedback = out / "feedback" / job.student_id / job.assignment_id / f"{job.assignment_id}.html"
    if answer.get("feedback"):
        feedback.parent.mkdir(parents=True, exist_ok=True)
        feedback.write_text(answer["feedback"])
    else:
        write_status_page(feedback, result)
    if result.status != "graded" and answer.get("log"):
        kept = out / "logs" / job.student_id / f"{job.assignment_id}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(answer["log"])
    return result


def grade_all(
    submissions: Path,
    out: Path,
    assignments: list[str] | None = None,
    workers: int = 2,
    limits: Limits = Limits(),
    progress: Callable[[str], None] = print,
    roster: Roster | None = None,
    due: dict[str, datetime] | None = None,
    scheduler: str | None = None,
) -> list[Result]:
    """Grade every submission under ``submissions`` and write the outputs to ``out``.

    Submissions are graded by ``workers`` local worker processes or, with ``scheduler`` (the address
    of a Dask scheduler, ``tcp://HOST:PORT``), by the workers of that Dask cluster. Either way each
    submission's kernel runs in the sandbox with the same limits, and ``out`` ends up the same.
    A class run (see :mod:`autograder.classroom`) may add a ``roster`` (a row for every student on it,
    submitted or not) and ``due`` dates per assignment (late submissions are flagged in their row).
    """
    known = assignment_ids()
    chosen = assignments or known
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise SystemExit(f"error: unknown assignment(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not submissions.is_dir() or not os.access(submissions, os.R_OK | os.X_OK):
        raise SystemExit(f"error: cannot read the submissions folder {submissions}")
    out.mkdir(parents=True, exist_ok=True)
    jobs = find_jobs(submissions, chosen, known)
    if roster is not None or due:
        from autograder.classroom import class_jobs

        in_play = assignments or sorted({j.assignment_id for j in jobs if j.assignment_id in known})
        jobs = class_jobs(jobs, submissions, in_play, roster, due)
    use_bwrap = sandbox_available()
    if not use_bwrap:
        progress("note: bubblewrap (bwrap) is not available here, so students' code runs with time and "
                 "memory limits in its own workspace but can read files outside it. Install the Debian "
                 "package 'bubblewrap' for full isolation.")
    gradable = sorted((j for j in jobs if j.notebook is not None),
                      key=lambda j: (j.assignment_id, j.student_id))
    needed = sorted({j.assignment_id for j in gradable})
    preloads = {a: setup_imports(a) for a in needed}
    results: dict[int, Result] = {}
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        scratch = Path(tmp)
        first = preloads[needed[0]] if needed else []
        backend = (LocalWorkers(workers, limits, use_bwrap, scratch / "logs", first)
                   if scheduler is None else DaskWorkers(scheduler, limits, use_bwrap, first))
        templates = {a: make_template(a, scratch / "templates" / a, limits) for a in needed}
        maxima = {a: template_max_score(course) for a, course in templates.items()}
        for note in backend.prepare(templates):
            progress(f"note: {note}")
        where = f"the Dask cluster at {scheduler}" if scheduler else f"{workers} worker(s)"
        progress(f"grading {len(jobs)} submission(s) of {', '.join(needed) or 'no assignment'} with {where}")
        order = {id(job): index for index, job in enumerate(jobs)}

        def report(result: Result) -> None:
            progress(f"[{len(results)}/{len(jobs)}] {result.student_id} / {result.assignment_id}: "
                     f"{result.score:g}/{result.max_score:g} {result.status} ({result.seconds:.1f} s)")

        for job in jobs:
            if job.notebook is None:
                result = Result(job.student_id, job.assignment_id, status=job.status, detail=job.detail,
                                max_score=maxima.get(job.assignment_id, 0.0))
                if job.status != "no submission":  # a roster student who submitted nothing gets no page
                    write_status_page(out / "feedback" / job.student_id / job.assignment_id
                                      / f"{job.assignment_id}.html", result)
                results[order[id(job)]] = result
                report(result)
        requests = [(job, make_request(templates[job.assignment_id], job.assignment_id, job.student_id,
                                       job.notebook.read_bytes(), preloads[job.assignment_id]))
                    for job in gradable]

        def on_answer(job: Job, answer: dict) -> None:
            result = record(out, job, answer, maxima[job.assignment_id])
            results[order[id(job)]] = result
            report(result)

        try:
            backend.run(requests, templates, on_answer)
        finally:
            backend.close()
    ordered = [results[i] for i in range(len(jobs))]
    from autograder.classroom import keep_exchange_files

    keep_exchange_files(jobs, submissions, out)  # what nbgrader release_feedback needs beside the feedback
    write_csv(out / "grades.csv", ordered)
    write_summary(out, ordered)
    progress(f"wrote {out / 'grades.csv'}, {out / 'summary.txt'} and feedback "
             f"for {len(ordered)} submission(s)")
    return ordered


class LocalWorkers:
    """Worker processes on this machine, each grading one submission at a time."""

    def __init__(self, workers: int, limits: Limits, use_bwrap: bool, logs: Path, preload: list[str]) -> None:
        self.handles = [WorkerProcess(limits, use_bwrap, logs / f"worker-{i}.log", preload)
                        for i in range(max(1, workers))]
        for handle in self.handles:
            handle.start()  # they import nbgrader and prepare a kernel while the templates are made

    def prepare(self, templates: dict[str, Path]) -> set[str]:
        """Wait until every worker has its first kernel prepared (they read the templates in place);
        return the workers' notes."""
        return {handle.note for handle in self.handles if handle.wait_ready() and handle.note}

    def run(self, requests: list[tuple[Job, dict]], templates: dict[str, Path],
            on_answer: Callable[[Job, dict], None]) -> None:
        idle: queue.SimpleQueue[WorkerProcess] = queue.SimpleQueue()
        for handle in self.handles:
            idle.put(handle)
        lock = threading.Lock()

        def grade_one(item: tuple[Job, dict]) -> None:
            job, request = item
            handle = idle.get()
            try:
                answer = handle.grade(request)
            finally:
                idle.put(handle)
            with lock:
                on_answer(job, answer)

        with ThreadPoolExecutor(max_workers=len(self.handles)) as pool:
            list(pool.map(grade_one, requests))

    def close(self) -> None:
        for handle in self.handles:
            handle.close()


def write_csv(path: Path, results: list[Result]) -> None:
    """grades.csv: the fixed columns, then one column per graded test cell (points earned)."""
    test_columns: list[str] = []
    for result in results:
        test_columns += [name for name in result.tests if name not in test_columns]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIXED_COLUMNS + test_columns)
        for r in results:
            row = [r.student_id, r.assignment_id, f"{r.score:g}", f"{r.max_score:g}", r.status, r.detail]
            writer.writerow(row + [f"{r.tests[c]:g}" if c in r.tests else "" for c in test_columns])
