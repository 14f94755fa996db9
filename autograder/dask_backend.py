"""Grading on a Dask cluster: each submission is one task, graded by a worker of the cluster.

    python -m autograder grade SUBMISSIONS --out OUT --scheduler tcp://HOST:PORT

The client (``grade_all``) reads every submission, sends each as one task, and writes ``OUT`` from the
answers, so ``OUT`` ends up exactly as a local run leaves it; the Dask workers need the course's
environment (the ``autograder`` package, nbgrader, bubblewrap) but no shared file system. Each
assignment's template (its gradebook with the hidden tests) is sent to every worker once.

On a Dask worker, a task hands the submission to a :class:`~autograder.worker.WorkerProcess` of that
Dask worker (started when the run begins, and kept for later tasks and runs), which grades it with
the same sandbox, limits and wall limit as a local run. If a Dask worker dies mid-task, the scheduler
gives its tasks to another worker; a submission that has killed
``distributed.scheduler.allowed-failures`` workers (3 by default) ends as ``KilledWorker`` and gets a
``kernel died`` row.

The Dask scheduler imports this module to read the tasks it is sent, so it imports nothing heavy at
the top: nbgrader and the grading engine are imported where a task runs (importing them in the
scheduler delayed the first task of a run by 1.2 s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import os
import queue
import tarfile
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder.settings import Limits

if TYPE_CHECKING:
    from autograder.worker import WorkerProcess

# Grading processes of this Dask worker that are not grading right now (one per task thread at most).
_idle: queue.SimpleQueue[WorkerProcess] = queue.SimpleQueue()


def archive(folder: Path) -> bytes:
    """A folder as the bytes of a gzipped tar file (paths relative to the folder)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes) -> Path:
    """Unpack a template archive into this machine's cache (once per archive); return its folder."""
    digest = hashlib.sha256(data).hexdigest()[:32]
    folder = Path(tempfile.gettempdir()) / "autograder-templates" / digest
    if not (folder / "gradebook.db").is_file():
        partial = folder.with_name(f"{digest}.{threading.get_ident()}.partial")
        partial.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(partial, filter="data")
        with contextlib.suppress(OSError):  # another thread of this worker unpacked it first
            partial.rename(folder)
    return folder


def _grading_process(limits: Limits, use_bwrap: bool, preload: list[str]) -> WorkerProcess:
    """An idle grading process of this Dask worker with these settings, or a new one."""
    from autograder.worker import WorkerProcess

    while True:
        try:
            worker = _idle.get_nowait()
        except queue.Empty:
            name = f"{os.getpid()}-{threading.get_ident()}.log"
            log = Path(tempfile.gettempdir()) / "autograder-dask" / name
            return WorkerProcess(limits, use_bwrap, log, preload)
        if worker.limits == limits and worker.use_bwrap == use_bwrap:
            return worker
        worker.close()


@functools.cache
def _sandbox_available() -> bool:
    from autograder.grade import sandbox_available

    return sandbox_available()


def warm_up(limits: dict[str, int], use_bwrap: bool, preload: list[str]) -> None:
    """Run on every Dask worker when a run begins: start its grading process and first kernel."""
    worker = _grading_process(Limits(**limits), use_bwrap, preload)
    worker.start()
    _idle.put(worker)


def wait_until_ready() -> list[str]:
    """Run on every Dask worker before the first task: wait until its grading processes are ready;
    return their notes."""
    ready = []
    while True:
        try:
            ready.append(_idle.get_nowait())
        except queue.Empty:
            break
    notes = []
    for worker in ready:
        if worker.wait_ready() and worker.note:
            notes.append(worker.note)
        _idle.put(worker)
    _sandbox_available()  # bubblewrap's probe, run now rather than in the first task
    return notes


def grade_task(request: dict[str, Any], template: bytes, limits: dict[str, int], use_bwrap: bool) -> dict:
    """Body of one Dask task, run on a worker: grade ``request`` with one of the worker's grading
    processes."""
    from autograder.engine import Result

    if use_bwrap and not _sandbox_available():
        result = Result(request["student_id"], request["assignment_id"], status="grader error",
                        detail="bubblewrap is not available on this Dask worker; the run asked for it")
        return {"result": dataclasses.asdict(result), "feedback": None, "log": ""}
    worker = _grading_process(Limits(**limits), use_bwrap, request.get("preload", []))
    try:
        return worker.grade({**request, "template": str(unpack(template))})
    finally:
        _idle.put(worker)


class DaskWorkers:
    """The workers of an existing Dask cluster (``dask.distributed``), reached through its scheduler."""

    def __init__(self, scheduler: str, limits: Limits, use_bwrap: bool, preload: list[str]) -> None:
        from distributed import Client

        self.client = Client(scheduler, set_as_default=False, timeout="60s")
        self.limits = limits
        self.use_bwrap = use_bwrap
        # Workers start their grading processes while the templates are made.
        self.client.run(warm_up, dataclasses.asdict(limits), use_bwrap, preload)
        self.archives: dict[str, Any] = {}

    def prepare(self, templates: dict[str, Path]) -> set[str]:
        """Send each template to every worker once and unpack it there, then wait until every worker's
        grading process is ready, before the first task; return the workers' notes."""
        for assignment_id, path in templates.items():
            data = archive(path)
            self.archives[assignment_id] = self.client.scatter(data, broadcast=True, hash=False)
            self.client.run(unpack, data)
        notes = self.client.run(wait_until_ready)  # {worker address: [note, ...]}
        return {note for worker_notes in notes.values() for note in worker_notes}

    def run(self, requests: list[tuple[Any, dict]], templates: dict[str, Path],
            on_answer: Callable[[Any, dict], None]) -> None:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        from autograder.engine import Result

        archives = self.archives
        limits = dataclasses.asdict(self.limits)
        futures = {}
        for job, request in requests:
            future = self.client.submit(grade_task, request, archives[request["assignment_id"]], limits,
                                        self.use_bwrap, pure=False, key=f"grade-{len(futures)}")
            futures[future] = job
        for future in as_completed(futures, loop=self.client.loop):
            job = futures[future]
            try:
                answer = future.result()
            except KilledWorker as error:
                result = Result(job.student_id, job.assignment_id, status="kernel died",
                                detail="grading this notebook stopped several Dask workers in a row")
                answer = {"result": dataclasses.asdict(result), "feedback": None, "log": str(error)}
            except Exception as error:  # noqa: BLE001 - every submission gets a row
                result = Result(job.student_id, job.assignment_id, status="grader error",
                                detail=f"the Dask task failed: {type(error).__name__}: {str(error)[:200]}")
                answer = {"result": dataclasses.asdict(result), "feedback": None, "log": repr(error)}
            on_answer(job, answer)

    def close(self) -> None:
        self.client.close()
