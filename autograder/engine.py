"""Grade one notebook with nbgrader's real autograde, in a workspace of its own.

A *template* is a throwaway nbgrader course holding one assignment, generated from ``solutions/``
into a fresh gradebook; its source notebook is then deleted, so the hidden tests exist only in the
gradebook (which the student's kernel cannot see). Each submission is graded in a copy of the
template, with the kernel started by :mod:`autograder.sandbox`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from traitlets.config import Config

from autograder.settings import COURSE_ROOT, IGNORED_FILES, SOURCE_DIR, Limits, course_config

KERNEL_NAME = "course-sandbox"


@dataclass
class Result:
    """The outcome of grading one student's notebook for one assignment."""

    student_id: str
    assignment_id: str
    score: float = 0.0
    max_score: float = 0.0
    status: str = "graded"
    detail: str = ""
    tests: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Result:
        return cls(**json.loads(text))


class GradingError(RuntimeError):
    """nbgrader could not do what was asked; the message says why."""


def _check(reply: dict, action: str) -> None:
    """nbgrader's API never raises: it answers ``{"success", "log", "error"}``."""
    if not reply.get("success"):
        raise GradingError(f"{action} failed: {reply.get('error') or ''}\n{reply.get('log') or ''}".strip())


def workspace_config(course: Path, limits: Limits) -> Config:
    """nbgrader settings for a throwaway course in ``course`` (the template or a workspace)."""
    config = course_config(course, db_url=f"sqlite:///{course / 'gradebook.db'}", limits=limits,
                           source_directory="source", release_directory="release")
    config.CourseDirectory.submitted_directory = "submitted"
    config.CourseDirectory.autograded_directory = "autograded"
    config.CourseDirectory.feedback_directory = "feedback"
    config.GuardedExecute.kernel_name = KERNEL_NAME
    # A throwaway course has no exchange. NbGraderAPI probes the exchange when it starts and logs a
    # CRITICAL "Unwritable directory" if it is missing: point it at the course folder, which exists.
    config.Exchange.root = str(course)
    # The kernel and nbgrader talk over Unix sockets in the runtime folder: the sandboxed kernel has
    # no network, and the folder is the only place outside its notebook folder that it can see.
    runtime = course / "runtime"
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(runtime / "kernel")
    config.KernelManager.connection_file = str(runtime / "kernel.json")
    return config


def _api(course: Path, limits: Limits):
    from nbgrader.apps import NbGraderAPI  # slow import, only where needed

    _ensure_tools_on_path()
    return NbGraderAPI(config=workspace_config(course, limits))


def _ensure_tools_on_path() -> None:
    """nbgrader's gradebook runs the ``alembic`` script, which lives beside this Python."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def assignment_ids(root: Path = COURSE_ROOT) -> list[str]:
    """The assignments of the course: folders of ``solutions/`` holding ``<id>/<id>.ipynb``."""
    source = root / SOURCE_DIR
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file())


def make_template(assignment_id: str, course: Path, limits: Limits = Limits()) -> Path:
    """Create in ``course`` an nbgrader course with ``assignment_id`` generated into its gradebook."""
    source = COURSE_ROOT / SOURCE_DIR / assignment_id
    shutil.copytree(source, course / "source" / assignment_id, ignore=shutil.ignore_patterns(*IGNORED_FILES))
    api = _api(course, limits)
    _check(api.generate_assignment(assignment_id, force=True, create=True), "nbgrader generate_assignment")
    api.gradebook.close()
    for notebook in (course / "source" / assignment_id).glob("*.ipynb"):
        notebook.unlink()
    return course


def template_max_score(course: Path) -> float:
    """The maximum score of the one assignment in a template course."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return float(gradebook.assignments[0].max_score)


def _write_kernelspec(workspace: Path, notebook_dir: Path, limits: Limits, use_bwrap: bool) -> None:
    spec_dir = workspace / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "autograder.sandbox", "--workspace", str(notebook_dir),
            "--runtime", str(workspace / "runtime"), "--memory-mb", str(limits.memory_mb)]
    if not use_bwrap:
        argv.append("--no-bwrap")
    argv += ["--", "-f", "{connection_file}"]
    # Interrupts go as a message on the control channel: a SIGINT to the launcher would stop
    # bubblewrap (and the kernel with it) instead of interrupting the running cell.
    spec = {"argv": argv, "display_name": "Python 3 (graded)", "language": "python",
            "interrupt_mode": "message"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a submission, raising ValueError with a readable reason if it is not a valid notebook."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # nbformat raises many kinds for bad JSON or schema
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"not a valid Jupyter notebook ({reason[:200]})") from error
    return notebook


_TIMEOUT = re.compile(r"CellTimeoutError|Timeout waiting for|timed out", re.IGNORECASE)


def grade(
    template: Path,
    workspace: Path,
    assignment_id: str,
    student_id: str,
    notebook: Path,
    limits: Limits = Limits(),
    use_bwrap: bool = True,
    feedback_to: Path | None = None,
) -> Result:
    """Autograde ``notebook`` as ``student_id``'s submission of ``assignment_id``.

    ``workspace`` must not exist; it becomes a copy of ``template``. Returns the result; writes the
    feedback HTML to ``feedback_to`` if given.
    """
    from nbgrader.api import Gradebook

    result = Result(student_id, assignment_id)
    shutil.copytree(template, workspace)
    submitted = workspace / "submitted" / student_id / assignment_id
    submitted.mkdir(parents=True)
    try:
        nb = read_notebook(notebook)
    except ValueError as error:
        result.status, result.detail = "malformed notebook", str(error)
        return result
    duplicates = drop_duplicate_grade_ids(nb)
    nbformat.write(nb, submitted / f"{assignment_id}.ipynb")
    notebook_dir = workspace / "autograded" / student_id / assignment_id
    notebook_dir.mkdir(parents=True)
    (workspace / "runtime").mkdir()
    _write_kernelspec(workspace, notebook_dir, limits, use_bwrap)
    os.environ["JUPYTER_PATH"] = str(workspace / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(workspace / "runtime")

    api = _api(workspace, limits)
    api.gradebook.update_or_create_student(student_id)
    reply = api.autograde(assignment_id, student_id, force=True, create=True)
    if not reply.get("success"):
        log = f"{reply.get('error') or ''}\n{reply.get('log') or ''}"
        print(log, file=sys.stderr)  # kept by the grader in OUT/logs/
        result.status, result.detail = _failure_reason(log)
        return result

    with Gradebook(workspace_config(workspace, limits).CourseDirectory.db_url) as gb:
        submission = gb.find_submission_notebook(assignment_id, assignment_id, student_id)
        result.score = float(submission.score)
        result.max_score = float(submission.max_score)
        result.tests = {g.name: float(g.score) for g in sorted(submission.grades, key=lambda g: g.name)
                        if g.cell_type == "code" and not _is_answer_grade(g)}
    graded = read_notebook(notebook_dir / f"{assignment_id}.ipynb")
    timed_out = [_cell_name(c) for c in graded.cells if _has_timeout(c)]
    if timed_out:
        result.status = "timeout"
        result.detail = (f"stopped after {limits.cell_timeout} s in: {', '.join(timed_out)}; "
                         "the rest of the notebook was graded")
    else:
        failed = [name for name, points in result.tests.items() if points <= 0]
        result.detail = "all tests passed" if not failed else f"failed: {', '.join(failed)}"
    if duplicates:
        result.detail = f"duplicated cells {', '.join(duplicates)} (graded the last copy); {result.detail}"
    if feedback_to is not None:
        _check(api.generate_feedback(assignment_id, student_id, force=True), "nbgrader generate_feedback")
        html = workspace / "feedback" / student_id / assignment_id / f"{assignment_id}.html"
        feedback_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(html, feedback_to)
    return result


def drop_duplicate_grade_ids(notebook: nbformat.NotebookNode) -> list[str]:
    """Keep nbgrader metadata only on the last cell of each ``grade_id``; return the duplicated ids.

    A cell copied in JupyterLab keeps its ``grade_id``. nbgrader's own ``DeduplicateIds`` then leaves
    an empty ``nbgrader`` entry that makes ``OverwriteCells`` fail (nbgrader issue #1083), so the
    earlier copies become plain cells here, before nbgrader sees them.
    """
    seen: set[str] = set()
    duplicated: list[str] = []
    for cell in reversed(notebook.cells):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        if grade_id in seen:
            del cell.metadata["nbgrader"]
            if grade_id not in duplicated:
                duplicated.append(grade_id)
        seen.add(grade_id)
    return sorted(duplicated)


def _is_answer_grade(grade) -> bool:
    return bool(getattr(grade.cell, "solution", False))


def _cell_name(cell: nbformat.NotebookNode) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"a {cell.cell_type} cell"


def _has_timeout(cell: nbformat.NotebookNode) -> bool:
    return any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError"
               for o in cell.get("outputs", []))


def _failure_reason(log: str) -> tuple[str, str]:
    """Turn nbgrader's failure log into a status and a sentence for the instructor."""
    if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log.lower():
        return "kernel died", "the notebook's kernel died (e.g. os._exit, a crash or the memory limit)"
    if "Duplicate" in log or "multiple times" in log:
        return "duplicate cells", "the notebook has duplicated graded cells"
    if _TIMEOUT.search(log):
        return "timeout", "a cell ran past the time limit and the kernel did not recover"
    last = [line for line in log.strip().splitlines() if line.strip()]
    return "autograde error", (last[-1][:300] if last else "nbgrader could not grade this notebook")
