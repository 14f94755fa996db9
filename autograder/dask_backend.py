"""Grading on a Dask cluster: each submission is one task, graded by a worker of the cluster.

    python -m autograder grade SUBMISSIONS --out OUT --scheduler tcp://HOST:PORT

The client (``grade_all``) reads every submission, sends each as one task, and writes ``OUT`` from the
answers, so ``OUT`` ends up exactly as a local run leaves it; the Dask workers need the course's
environment (the ``autograder`` package, nbgrader, bubblewrap) but no shared file system. Each
assignment's template (its gradebook with the hidden tests) is sent to every worker once.

On a Dask worker, a task hands the submission to a :class:`~autograder.worker.WorkerProcess` of that
worker thread (started on first use and kept for later tasks), which grades it with the same sandbox,
limits and wall limit as a local run. If a Dask worker dies mid-task, the scheduler gives its tasks to
another worker; a submission that has killed ``distributed.scheduler.allowed-failures`` workers (3
by default) ends as ``KilledWorker`` and gets a ``kernel died`` row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import tarfile
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autograder.engine import Result
from autograder.settings import Limits

_local = threading.local()


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


def grade_task(request: dict[str, Any], template: bytes, limits: dict[str, int], use_bwrap: bool) -> dict:
    """Body of one Dask task, run on a worker: grade ``request`` with the worker's grading process."""
    from autograder.grade import sandbox_available
    from autograder.worker import WorkerProcess

    if use_bwrap and not sandbox_available():
        result = Result(request["student_id"], request["assignment_id"], status="grader error",
                        detail="bubblewrap is not available on this Dask worker; the run asked for it")
        return {"result": dataclasses.asdict(result), "feedback": None, "log": ""}
    worker: WorkerProcess | None = getattr(_local, "worker", None)
    wanted = Limits(**limits)
    if worker is None or worker.limits != wanted or worker.use_bwrap != use_bwrap:
        if worker is not None:
            worker.close()
        log = Path(tempfile.gettempdir()) / "autograder-dask" / f"worker-{threading.get_ident()}.log"
        worker = _local.worker = WorkerProcess(wanted, use_bwrap, log, request.get("preload"))
    return worker.grade({**request, "template": str(unpack(template))})


class DaskWorkers:
    """The workers of an existing Dask cluster (``dask.distributed``), reached through its scheduler."""

    def __init__(self, scheduler: str, limits: Limits, use_bwrap: bool) -> None:
        from distributed import Client

        self.client = Client(scheduler, set_as_default=False, timeout="60s")
        self.limits = limits
        self.use_bwrap = use_bwrap

    def run(self, requests: list[tuple[Any, dict]], templates: dict[str, Path],
            on_answer: Callable[[Any, dict], None]) -> None:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        archives = {a: self.client.scatter(archive(path), broadcast=True, hash=False)
                    for a, path in templates.items()}
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
