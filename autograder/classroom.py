"""What grading a real class adds to grading a folder: the roster, due dates and nbgrader's exchange.

:func:`class_jobs` runs before grading: every roster student without a submission gets a row of their
own (``no submission``), a submission from an id the roster does not list says so, and a submission made
after its due date says by how much. :func:`keep_exchange_files` runs after grading: it puts the
submission's ``timestamp.txt`` and ``submission_secret.txt`` beside its feedback, which is what
``nbgrader release_feedback`` needs to return the feedback through the exchange.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from autograder.grade import Job
from autograder.lateness import late_note, submission_time
from autograder.roster import Roster

NO_SUBMISSION = "no submission"
EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")


def _add_detail(job: Job, note: str) -> None:
    if note:
        job.detail = f"{job.detail}; {note}" if job.detail else note


def submission_folder(job: Job, submissions: Path) -> Path | None:
    """The ``<student>/<assignment>/`` folder a job's notebook came from (None for a loose notebook)."""
    folder = submissions / job.student_id / job.assignment_id
    if job.notebook is not None and job.notebook.parent == folder:
        return folder
    return None


def class_jobs(jobs: list[Job], submissions: Path, assignments: list[str], roster: Roster | None = None,
               due: dict[str, datetime] | None = None) -> list[Job]:
    """The jobs of a class run: ``jobs`` with roster and lateness notes, plus one per missing student.

    ``assignments`` are the assignments in play: a roster student without a folder for one of them gets
    a ``no submission`` job. Sorted by student id, then assignment.
    """
    jobs = list(jobs)
    if roster is not None:
        present = {(_roster_id(roster, j.student_id), j.assignment_id) for j in jobs}
        for job in jobs:
            if job.student_id not in roster:
                _add_detail(job, "student id not on the roster")
        for student in roster:
            for assignment_id in assignments:
                if (student.id, assignment_id) not in present:
                    jobs.append(Job(student.id, assignment_id, None, NO_SUBMISSION,
                                    f"on the roster, but no submission was found "
                                    f"(no folder {student.id}/{assignment_id}/)"))
    for job in jobs:
        if due and job.assignment_id in due and job.notebook is not None:
            folder = submission_folder(job, submissions) or job.notebook.parent
            _add_detail(job, late_note(submission_time(folder), due[job.assignment_id]))
    return sorted(jobs, key=lambda j: (j.student_id, j.assignment_id))


def _roster_id(roster: Roster, student_id: str) -> str | None:
    student = roster.get(student_id)
    return student.id if student else None


def keep_exchange_files(jobs: list[Job], submissions: Path, out: Path) -> None:
    """Put nbgrader's submission files beside each job's feedback, and make the feedback readable.

    ``nbgrader release_feedback`` reads ``feedback/<student>/<assignment>/`` and needs the submission's
    ``timestamp.txt`` and ``submission_secret.txt`` there: it names the released file by a hash of the
    secret, which only that student's ``fetch_feedback`` can recompute. Feedback is made world-readable
    (0644) because release_feedback copies it with its mode, and students fetch it as themselves.
    """
    for job in jobs:
        feedback_dir = out / "feedback" / job.student_id / job.assignment_id
        html = feedback_dir / f"{job.assignment_id}.html"
        if html.is_file():
            html.chmod(0o644)
        folder = submission_folder(job, submissions)
        if folder is None or not feedback_dir.is_dir():
            continue
        for name in EXCHANGE_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, feedback_dir / name)
