"""The course's nbgrader settings, in one place.

nbgrader's command line reads them through ``autograder/nbgrader_config.py``; the grading tool and
the release command pass them to nbgrader's API directly (the API does not read config files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config

COURSE_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = "solutions"
RELEASE_DIR = "exercises"

COURSE_ID = "attention-course"
"""nbgrader's course id (``c.CourseDirectory.course_id``): the course's folder in the exchange. On a
JupyterHub whose formgrader runs as a service, it must equal the service's name."""

EXCHANGE_ROOT = "/srv/nbgrader/exchange"
"""nbgrader's exchange (``c.Exchange.root``): where ``release_assignment`` puts assignments, students
``submit`` and ``release_feedback`` puts feedback. It must exist and be writable by everyone, with the
sticky bit (``sudo install -d -m 1777 /srv/nbgrader/exchange``), and every student and instructor must
see it at this path (on a JupyterHub: a volume mounted into every user's server). To use another place,
change it here: the instructor's configuration and the student edition both take it from here."""

# Files nbgrader must never copy from a source or submission folder.
IGNORED_FILES = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "*.db",
    "feedback",
    ".DS_Store",
]

# stderr text that is a library's warning, not a failure: nbgrader zeroes a test cell that wrote
# anything to stderr, so warnings (e.g. a PyTorch UserWarning) are removed before grading.
WARNING_PATTERN = r"\b[A-Za-z]*Warning\b"

# nbgrader's autograde, in two passes: the sanitizing pass restores the locked cells from the
# gradebook (nbgrader's default list), then the grading pass executes the notebook and saves the
# grades. The grader runs these same preprocessors (autograder/engine.py) and so does nbgrader's CLI.
SANITIZE_PREPROCESSORS = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
AUTOGRADE_PREPROCESSORS = [
    "autograder.execute.GuardedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Feedback never shows hidden tests (see autograder/feedback.py).
FEEDBACK_PREPROCESSORS = [
    "nbgrader.preprocessors.GetGrades",
    "autograder.feedback.RedactHiddenTestErrors",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]


@dataclass(frozen=True)
class Limits:
    """Resource limits for running one student's notebook."""

    cell_timeout: int = 30
    """Seconds one cell may run before it is interrupted (then, if it ignores that, abandoned)."""
    wall_seconds: int = 120
    """Seconds one whole submission may take, kernel start to feedback."""
    memory_mb: int = 3072
    """Memory the student's kernel may allocate (RLIMIT_DATA), in MiB."""
    output_lines: int = 200
    """Lines of output kept per cell; more is cut."""


def course_config(
    root: Path = COURSE_ROOT,
    *,
    db_url: str | None = None,
    limits: Limits = Limits(),
    source_directory: str = SOURCE_DIR,
    release_directory: str = RELEASE_DIR,
) -> Config:
    """Return the nbgrader configuration of the course rooted at ``root``.

    Paths are absolute so that nbgrader behaves the same from any working directory.
    """
    root = Path(root).resolve()
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.source_directory = source_directory
    c.CourseDirectory.release_directory = release_directory
    c.CourseDirectory.submitted_directory = "grading/submitted"
    c.CourseDirectory.autograded_directory = "grading/autograded"
    c.CourseDirectory.feedback_directory = "grading/feedback"
    c.CourseDirectory.db_url = db_url or f"sqlite:///{root / 'grading' / 'gradebook.db'}"
    c.CourseDirectory.ignore = IGNORED_FILES
    c.CourseDirectory.course_id = COURSE_ID
    c.Exchange.root = EXCHANGE_ROOT

    # Execution: interrupt a runaway cell, and if it swallows KeyboardInterrupt, move on anyway
    # (without raise_on_iopub_timeout=False such a notebook gets no grade at all).
    c.Execute.timeout = limits.cell_timeout
    c.Execute.interrupt_on_timeout = True
    c.Execute.raise_on_iopub_timeout = False
    c.Execute.startup_timeout = 60
    c.ExecutePreprocessor.timeout = limits.cell_timeout

    # A deleted test cell is put back (and graded), not left for manual grading.
    c.OverwriteCells.add_missing_cells = True

    c.Autograde.sanitize_preprocessors = list(SANITIZE_PREPROCESSORS)
    c.Autograde.autograde_preprocessors = list(AUTOGRADE_PREPROCESSORS)
    c.GuardedExecute.timeout = limits.cell_timeout
    c.GuardedExecute.interrupt_on_timeout = True
    c.GuardedExecute.raise_on_iopub_timeout = False
    c.GuardedExecute.startup_timeout = 60

    c.IgnorePattern.enabled = True
    c.IgnorePattern.pattern = WARNING_PATTERN

    c.LimitOutput.max_lines = limits.output_lines
    c.LimitOutput.max_traceback = 100

    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

    c.GenerateFeedback.preprocessors = list(FEEDBACK_PREPROCESSORS)
    c.ClearHiddenTests.enforce_metadata = False
    return c
