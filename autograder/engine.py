"""Grade notebooks with nbgrader's autograde preprocessors, each in a sandboxed kernel of its own.

A *template* is a throwaway nbgrader course holding one assignment, generated from ``solutions/``
into a fresh gradebook; its source notebook is then deleted, so the hidden tests exist only in the
gradebook (which the student's kernel cannot see).

A :class:`Grader` grades submissions one after another in the process that owns it (a worker of
``python -m autograder grade``, see :mod:`autograder.worker`). For each submission it runs
nbgrader's own autograde preprocessors (``settings.SANITIZE_PREPROCESSORS``, then
``settings.AUTOGRADE_PREPROCESSORS``) on the notebook in memory, against the grader's own copy of the
template's gradebook, then renders the feedback page with nbgrader's feedback template. What
nbgrader's autograde *application* adds around these steps (copying files between course folders,
writing the notebook to disk and reading it back between the two passes, reading the configuration
and opening the gradebook again for every command) is not needed here and is left out.

The kernel of each submission is a :class:`PreparedKernel`: started in a fresh workspace before the
submission arrives, forked with the assignment's imports done from the grader's kernel factory
(:mod:`autograder.kernel_factory`, sandboxed by :mod:`autograder.sandbox`), and used for that one
submission only.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import itertools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from traitlets.config import Config
from traitlets.utils.importstring import import_item

from autograder.kernel_factory import ForkedKernel, KernelFactory
from autograder.settings import (
    AUTOGRADE_PREPROCESSORS,
    COURSE_ROOT,
    FEEDBACK_PREPROCESSORS,
    IGNORED_FILES,
    SANITIZE_PREPROCESSORS,
    SOURCE_DIR,
    Limits,
    course_config,
)

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


def workspace_config(course: Path, limits: Limits, db_url: str | None = None) -> Config:
    """nbgrader settings for a throwaway course in ``course`` (a template)."""
    config = course_config(course, db_url=db_url or f"sqlite:///{course / 'gradebook.db'}", limits=limits,
                           source_directory="source", release_directory="release")
    config.CourseDirectory.submitted_directory = "submitted"
    config.CourseDirectory.autograded_directory = "autograded"
    config.CourseDirectory.feedback_directory = "feedback"
    # A throwaway course has no exchange. NbGraderAPI probes the exchange when it starts and logs a
    # CRITICAL "Unwritable directory" if it is missing: point it at the course folder, which exists.
    config.Exchange.root = str(course)
    return config


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
    from nbgrader.apps import NbGraderAPI  # slow import, only where needed

    source = COURSE_ROOT / SOURCE_DIR / assignment_id
    shutil.copytree(source, course / "source" / assignment_id, ignore=shutil.ignore_patterns(*IGNORED_FILES))
    _ensure_tools_on_path()
    api = NbGraderAPI(config=workspace_config(course, limits))
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


def setup_imports(assignment_id: str, root: Path = COURSE_ROOT) -> list[str]:
    """The modules imported by the assignment's read-only setup cells (those before the first task).

    A kernel prepared for this assignment imports them before the submission arrives.
    """
    notebook = nbformat.read(root / SOURCE_DIR / assignment_id / f"{assignment_id}.ipynb", as_version=4)
    modules: list[str] = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") or meta.get("grade"):
            break
        if cell.cell_type != "code" or not meta.get("locked"):
            continue
        with contextlib.suppress(SyntaxError):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Import):
                    modules += [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules.append(node.module)
    return list(dict.fromkeys(modules))


def read_notebook(data: bytes | Path) -> nbformat.NotebookNode:
    """Read a submission, raising ValueError with a readable reason if it is not a valid notebook."""
    try:
        text = data.read_bytes() if isinstance(data, Path) else data
        notebook = nbformat.reads(text.decode("utf-8"), as_version=4)
    except Exception as error:  # nbformat raises many kinds for bad JSON or schema
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"not a valid Jupyter notebook ({reason[:200]})") from error
    return notebook


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


def share_gradebook_engines() -> None:
    """Make every nbgrader ``Gradebook`` of this process share one SQLAlchemy engine per database.

    nbgrader opens a ``Gradebook`` (and with it a new SQLAlchemy engine) in each preprocessor, and
    an engine's cache of compiled queries dies with it: compiling nbgrader's queries again took more
    time than running the notebook. ``Gradebook.close()`` disposes of the engine's connections,
    which a shared engine simply opens again. The grader's gradebooks are throwaway copies, so
    SQLite is also told not to wait for the disk at every commit.
    """
    import nbgrader.api
    from sqlalchemy import create_engine, event

    if getattr(nbgrader.api.create_engine, "shared", False):
        return
    engines: dict[tuple, object] = {}

    def shared_create_engine(url, **options):
        key = (str(url), tuple(sorted(options.items())))
        if key not in engines:
            engines[key] = create_engine(url, **options)
            event.listen(engines[key], "connect", _no_disk_waits)
        return engines[key]

    shared_create_engine.shared = True
    nbgrader.api.create_engine = shared_create_engine


def _no_disk_waits(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous = OFF")
    cursor.execute("PRAGMA journal_mode = MEMORY")
    cursor.close()


def _run_sync(coroutine_function):
    from jupyter_core.utils import run_sync

    return run_sync(coroutine_function)


class PreparedKernel:
    """A sandboxed kernel started ahead of need in a fresh workspace, for one submission only.

    ``root/work`` is the kernel's working directory (the only folder it may write besides its
    sockets in ``root/runtime``); the kernel's own output goes to ``root/kernel.log``. With a
    ``factory`` the kernel is forked from it (the modules already imported, see
    :mod:`autograder.kernel_factory`); otherwise it is a new process that imports ``preload`` itself.
    """

    def __init__(self, root: Path, limits: Limits, use_bwrap: bool, preload: Sequence[str],
                 factory: KernelFactory | None = None) -> None:
        from jupyter_client import AsyncKernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        self.root = root
        self.work = root / "work"
        self.preload = tuple(preload)
        runtime, spec_dir = root / "runtime", root / "kernels" / KERNEL_NAME
        for folder in (self.work, runtime, spec_dir):
            folder.mkdir(parents=True)
        # Interrupts go as a message on the control channel: a SIGINT to the launcher would stop
        # bubblewrap (and the kernel with it) instead of interrupting the running cell.
        spec: dict = {"display_name": "Python 3 (graded)", "language": "python", "interrupt_mode": "message"}
        if factory is not None:
            spec["argv"] = ["-f", "{connection_file}"]
            spec["metadata"] = {"kernel_provisioner": {"provisioner_name": "autograder-forked", "config": {
                "root": str(factory.root), "folder": str(root.resolve())}}}
        else:
            argv = [sys.executable, "-m", "autograder.sandbox", "--workspace", str(self.work),
                    "--runtime", str(runtime), "--memory-mb", str(limits.memory_mb),
                    "--preload", ",".join(self.preload)]
            if not use_bwrap:
                argv.append("--no-bwrap")
            spec["argv"] = [*argv, "--", "-f", "{connection_file}"]
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        # The kernel and the grader talk over Unix sockets in the runtime folder: the sandboxed
        # kernel has no network, and the folder is the only place outside its work folder it sees.
        specs = KernelSpecManager(kernel_dirs=[str(root / "kernels")])
        self.km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs, transport="ipc",
                                     ip=str(runtime / "kernel"), connection_file=str(runtime / "kernel.json"))
        self._log = open(root / "kernel.log", "ab")  # noqa: SIM115 - closed in close()
        _run_sync(self.km.start_kernel)(cwd=str(self.work), stdout=self._log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """Stop the kernel at once (everything it started dies with it)."""
        process = getattr(self.km.provisioner, "process", None)
        if isinstance(process, ForkedKernel):
            process.kill()
        elif process is not None and process.poll() is None:
            # bubblewrap and everything in the sandbox die with its launcher
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the kernel printed on its own stdout and stderr."""
        text = (self.root / "kernel.log").read_text(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def close(self) -> None:
        """Shut the kernel down and delete its workspace."""
        self.kill()
        with contextlib.suppress(Exception):
            _run_sync(self.km.shutdown_kernel)(now=True)
        self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


_IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\balt=)", re.IGNORECASE)


def _feedback_exporter_class():
    """nbconvert's HTMLExporter without its last pass, which parses the whole page with BeautifulSoup.

    That pass gives images without alternative text a placeholder and makes JupyterLab-template cells
    focusable; on a feedback page it cost more than grading the notebook. nbgrader's feedback template
    extends the classic template, which has no such cells, so only the placeholder is kept, added by
    a pattern on the ``<img`` tags.
    """
    from nbconvert.exporters import HTMLExporter, TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class FeedbackExporter(HTMLExporter):
        highlighters: dict = {}

        def from_notebook_node(self, nb, resources=None, **kw):
            info = nb.metadata.get("language_info", {})
            lexer = info.get("pygments_lexer", info.get("name", None))
            if lexer not in self.highlighters:
                highlight = Highlight2HTML(pygments_lexer=lexer, parent=self)
                self.highlighters[lexer] = _memoized_highlight(highlight)
            self.register_filter("highlight_code", self.highlighters[lexer])
            resources = self._init_resources(resources)
            self.register_filter("filter_data_type", WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources))
            html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            html = _IMG_WITHOUT_ALT.sub('<img alt="No description has been provided for this image"', html)
            return html, resources

    return FeedbackExporter


def _memoized_highlight(highlight):
    """Pygments highlighting, remembered by source: every submission repeats the same test cells."""

    @functools.lru_cache(maxsize=1024)
    def cached(source: str, language: str | None, magics_language: str | None) -> str:
        return highlight(source, language, {"magics_language": magics_language} if magics_language else None)

    def highlight_code(source, language=None, metadata=None):
        # Of a cell's metadata, the highlighter reads only "magics_language".
        return cached(source, language, (metadata or {}).get("magics_language"))

    highlight_code.cache_info = cached.cache_info
    return highlight_code


class FeedbackRenderer:
    """nbgrader's feedback page (``GenerateFeedback``), with its HTML exporter built once per process."""

    def __init__(self, config: Config) -> None:
        formgrader = Path(import_item("nbgrader").__file__).parent / "server_extensions" / "formgrader"
        config = Config(config)
        config.HTMLExporter.template_name = "feedback"
        config.HTMLExporter.extra_template_basedirs = [str(formgrader / "templates")]
        config.HTMLExporter.extra_template_paths = [
            str(formgrader / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
        self.exporter = _feedback_exporter_class()(config=config)
        for name in FEEDBACK_PREPROCESSORS:
            self.exporter.register_preprocessor(import_item(name), enabled=True)

    def render(self, notebook: nbformat.NotebookNode, resources: dict) -> str:
        html, _ = self.exporter.from_notebook_node(notebook, resources=resources)
        return html


_TIMEOUT = re.compile(r"CellTimeoutError|Timeout waiting for|timed out", re.IGNORECASE)


@dataclass
class Outcome:
    """What grading one submission produced: the row, the feedback page and the log."""

    result: Result
    feedback: str | None = None
    log: str = ""


class Grader:
    """Grades submissions one after another in this process (not thread-safe: one per thread)."""

    def __init__(self, scratch: Path, limits: Limits = Limits(), use_bwrap: bool = True) -> None:
        self.scratch = scratch
        self.limits = limits
        self.use_bwrap = use_bwrap
        self._gradebooks: dict[Path, Path] = {}  # template -> this grader's copy
        self._spare: PreparedKernel | None = None
        self._kernel_names = itertools.count()
        self._factory: KernelFactory | None = None
        self.note = ""  # why kernels are started one by one instead of forked, for the instructor
        self._feedback = FeedbackRenderer(workspace_config(scratch, limits))
        _ensure_tools_on_path()
        share_gradebook_engines()

    def prepare(self, preload: Sequence[str]) -> None:
        """Start a kernel for the next submission now, with ``preload`` imported, unless one is ready."""
        if self._spare is None:
            root = self.scratch / "kernels" / f"k{next(self._kernel_names)}"
            factory = self._factory_for(preload)
            self._spare = PreparedKernel(root, self.limits, self.use_bwrap, preload, factory)

    def _factory_for(self, preload: Sequence[str]) -> KernelFactory | None:
        """The kernel factory with ``preload`` imported (started on first use), or None where its
        kernels could not be isolated as well as kernels started one by one in bubblewrap."""
        factory = self._factory
        if factory is not None and (factory.preload != list(preload) or not factory.alive()):
            self._factory.close()
            self._factory = None
        if not self.note and self._factory is None:
            factory = KernelFactory(self.scratch / "kernels", self.limits.memory_mb, self.use_bwrap,
                                    list(preload), self.scratch / "factory.log")
            try:
                problem = ("" if factory.isolated() or not self.use_bwrap else
                           "nested namespaces are not available here, so forked kernels cannot be isolated")
            except OSError as error:
                problem = str(error)
            if problem:
                self.note = (f"{problem}: every kernel is started on its own instead (slower: the "
                             "course's imports are done again for each submission)")
                logging.getLogger("autograder").warning(self.note)
                factory.close()
            else:
                self._factory = factory
        return self._factory

    def _take_kernel(self, preload: Sequence[str]) -> PreparedKernel:
        self.prepare(preload)
        kernel, self._spare = self._spare, None
        return kernel

    def _gradebook(self, template: Path) -> str:
        """A fresh copy of the template's gradebook for one submission (its student and grades are
        added to it). Fresh each time: nbgrader's queries slow down as a gradebook fills (measured:
        from 2.5 s to 3.2 s per ex03 submission over 40 submissions a worker), and no connection is
        open between submissions (``Gradebook.close`` disposes of the engine's)."""
        if template not in self._gradebooks:
            self._gradebooks[template] = self.scratch / "gradebooks" / f"{len(self._gradebooks)}.db"
            self._gradebooks[template].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template / "gradebook.db", self._gradebooks[template])
        return f"sqlite:///{self._gradebooks[template]}"

    def close(self) -> None:
        if self._spare is not None:
            self._spare.close()
            self._spare = None
        if self._factory is not None:
            self._factory.close()
            self._factory = None

    def grade(self, template: Path, assignment_id: str, student_id: str, notebook: bytes,
              preload: Sequence[str] = ()) -> Outcome:
        """Autograde ``notebook`` (the file's bytes) as ``student_id``'s submission of ``assignment_id``."""
        from nbgrader.api import Gradebook

        start = time.monotonic()
        result = Result(student_id, assignment_id)
        try:
            nb = read_notebook(notebook)
        except ValueError as error:
            result.status, result.detail = "malformed notebook", str(error)
            return Outcome(result)
        duplicates = drop_duplicate_grade_ids(nb)
        db_url = self._gradebook(template)
        with Gradebook(db_url) as gradebook:
            gradebook.update_or_create_student(student_id)
            gradebook.update_or_create_submission(assignment_id, student_id)
        kernel = self._take_kernel(preload)
        resources = {"unique_key": assignment_id, "metadata": {"path": str(kernel.work)},
                     "nbgrader": {"student": student_id, "assignment": assignment_id,
                                  "notebook": assignment_id, "db_url": db_url}}
        config = workspace_config(template, self.limits, db_url)
        log = io.StringIO()
        wall_limit = threading.Event()
        watchdog = threading.Timer(max(1.0, self.limits.wall_seconds - (time.monotonic() - start)),
                                   lambda: (wall_limit.set(), kernel.kill()))
        with _captured_log(log):
            watchdog.start()
            try:
                nb, resources = _autograde(nb, resources, config, kernel)
            except Exception as error:  # noqa: BLE001 - every failure becomes a row
                print(f"{type(error).__name__}: {error}", file=log)
                if wall_limit.is_set():
                    result.status = "timeout"
                    result.detail = f"stopped after the wall limit of {self.limits.wall_seconds} s"
                else:
                    print(kernel.log_tail(), file=log)
                    result.status, result.detail = _failure_reason(f"{type(error).__name__}: {error}")
            finally:
                watchdog.cancel()
                kernel.close()
                self.prepare(preload)  # the next kernel starts while this feedback is rendered
        if result.status != "graded":
            result.seconds = round(time.monotonic() - start, 2)
            return Outcome(result, log=log.getvalue())

        with Gradebook(db_url) as gradebook:
            submission = gradebook.find_submission_notebook(assignment_id, assignment_id, student_id)
            result.score = float(submission.score)
            result.max_score = float(submission.max_score)
            result.tests = {g.name: float(g.score) for g in sorted(submission.grades, key=lambda g: g.name)
                            if g.cell_type == "code" and not getattr(g.cell, "solution", False)}
        timed_out = [_cell_name(c) for c in nb.cells if _has_timeout(c)]
        if timed_out:
            result.status = "timeout"
            result.detail = (f"stopped after {self.limits.cell_timeout} s in: {', '.join(timed_out)}; "
                             "the rest of the notebook was graded")
        else:
            failed = [name for name, points in result.tests.items() if points <= 0]
            result.detail = "all tests passed" if not failed else f"failed: {', '.join(failed)}"
        if duplicates:
            result.detail = (f"duplicated cells {', '.join(duplicates)} (graded the last copy); "
                             f"{result.detail}")
        with _captured_log(log):
            feedback = self._feedback.render(nb, resources)
        result.seconds = round(time.monotonic() - start, 2)
        return Outcome(result, feedback, log.getvalue())


def _autograde(nb: nbformat.NotebookNode, resources: dict, config: Config,
               kernel: PreparedKernel) -> tuple[nbformat.NotebookNode, dict]:
    """nbgrader's two autograde passes, with the execution in ``kernel``."""
    from nbconvert.preprocessors import ExecutePreprocessor

    for name in [*SANITIZE_PREPROCESSORS, *AUTOGRADE_PREPROCESSORS]:
        preprocessor = import_item(name)(config=config)
        if isinstance(preprocessor, ExecutePreprocessor):
            try:
                nb, resources = preprocessor.preprocess(nb, resources, km=kernel.km)
            finally:
                if preprocessor.kc is not None:
                    preprocessor.kc.stop_channels()
        else:
            nb, resources = preprocessor(nb, resources)
    return nb, resources


@contextlib.contextmanager
def _captured_log(stream: io.StringIO):
    """Send nbgrader's and nbconvert's log messages to ``stream`` while the block runs."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    loggers = [logging.getLogger("traitlets"), logging.getLogger("nbgrader")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _cell_name(cell: nbformat.NotebookNode) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"a {cell.cell_type} cell"


def _has_timeout(cell: nbformat.NotebookNode) -> bool:
    return any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError"
               for o in cell.get("outputs", []))


def _failure_reason(log: str) -> tuple[str, str]:
    """Turn a grading failure's message into a status and a sentence for the instructor."""
    if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log.lower():
        return "kernel died", "the notebook's kernel died (e.g. os._exit, a crash or the memory limit)"
    if "Duplicate" in log or "multiple times" in log:
        return "duplicate cells", "the notebook has duplicated graded cells"
    if _TIMEOUT.search(log):
        return "timeout", "a cell ran past the time limit and the kernel did not recover"
    last = [line for line in log.strip().splitlines() if line.strip()]
    return "autograde error", (last[-1][:300] if last else "nbgrader could not grade this notebook")
