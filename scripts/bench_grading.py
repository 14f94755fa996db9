"""Benchmark the grading tool against the floor, in one run, as ratios (the machine may be noisy).

    .venv/bin/python scripts/bench_grading.py [--copies 8] [--assignments ex01_attention_basics ...]
                                              [--dask] [--class-size 200] [--runaway]

For each assignment:

- the **floor**: the assignment's source notebook (the solution with every test, hidden ones
  included: the code grading runs) executed top to bottom in a fresh kernel with nbclient, in the
  grader's kernel environment (one OpenMP thread, matplotlib's Agg backend), ``copies`` times, one at
  a time and two at a time; seconds per notebook;
- **grading** ``copies`` solved submissions with 1 and with 2 local workers, from the first submission
  started to the last one graded; seconds per submission, and the ratio to the floor at the same
  parallelism (the budget is 1.3).

``--dask`` also grades the copies through a Dask scheduler and two workers started on loopback with
the course's Dask settings (``autograder/dask.yaml``, unless ``DASK_CONFIG`` is set), and gives their
throughput relative to two local workers, both measured three times in turn (the budget is 0.9).
``--class-size N`` times N solved submissions of the first assignment with 2 workers. ``--runaway``
grades one submission that swallows KeyboardInterrupt under a 20 s wall limit. Figures are printed
and written to ``_build/bench_grading.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import nbgrader_meta, solved_release, source_notebook  # noqa: E402

from autograder.grade import grade_all  # noqa: E402
from autograder.sandbox import KERNEL_ENV  # noqa: E402
from autograder.settings import Limits  # noqa: E402


def execute(notebook_json: str, folder: str) -> None:
    """Execute a notebook in a fresh kernel (the floor). The kernel talks over Unix sockets and has the
    environment the grader gives its kernels (``KERNEL_ENV``: one OpenMP thread, matplotlib's Agg
    backend): two kernels started at once over TCP can pick the same free port and die, and two kernels
    that each start a thread per core on a 2-core machine slow each other down (ex05 took 10.6 s
    instead of 3.1 s)."""
    import tempfile

    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.reads(notebook_json, as_version=4)
    os.environ.update(KERNEL_ENV)
    with tempfile.TemporaryDirectory(prefix="floor-") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            NotebookClient(notebook, km=km, timeout=120, resources={"metadata": {"path": folder}}).execute()
        finally:
            km.shutdown_kernel(now=True)  # nbclient leaves a kernel it was given running


def floor(assignment_id: str, copies: int, parallel: int, folder: Path) -> float:
    """Seconds per notebook to execute ``copies`` source notebooks, ``parallel`` at a time."""
    notebook = nbformat.writes(source_notebook(assignment_id))
    with ProcessPoolExecutor(parallel) as pool:
        list(pool.map(abs, range(parallel)))  # start the processes outside the timing
        start = time.monotonic()
        list(pool.map(execute, [notebook] * copies, [str(folder)] * copies))
        return (time.monotonic() - start) / copies


def make_submissions(folder: Path, assignment_id: str, notebook, copies: int) -> Path:
    for index in range(copies):
        target = folder / f"student{index:03d}" / assignment_id
        target.mkdir(parents=True)
        nbformat.write(notebook, target / f"{assignment_id}.ipynb")
    return folder


def timed_grade(submissions: Path, out: Path, limits: Limits = Limits(), **options) -> tuple[float, list]:
    """Seconds from the first submission started to the last one graded (set-up excluded)."""
    stamps: dict[str, float] = {}

    def progress(message: str) -> None:
        if message.startswith("grading "):
            stamps["start"] = time.monotonic()
        elif message.startswith("["):
            stamps["end"] = time.monotonic()

    results = grade_all(submissions, out, limits=limits, progress=progress, **options)
    return stamps["end"] - stamps["start"], results


class LocalCluster:
    """A Dask scheduler and two single-threaded workers on loopback, as separate processes."""

    def __init__(self, workers: int = 2) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{port}"
        dask = str(Path(sys.executable).parent / "dask")
        # The course's Dask settings, as the README starts a cluster (DASK_CONFIG=/dev/null: Dask's own).
        config = os.environ.get("DASK_CONFIG", str(ROOT / "autograder" / "dask.yaml"))
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True,
                 "env": {**os.environ, "DASK_CONFIG": config}}
        self.processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                            "--no-dashboard"], **quiet)]
        self.processes += [subprocess.Popen([dask, "worker", self.address, "--nthreads", "1", "--no-nanny",
                                             "--no-dashboard"], **quiet) for _ in range(workers)]
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=120)

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()


def bench_assignment(assignment_id: str, copies: int, tmp: Path, dask: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    submissions = make_submissions(tmp / f"subs-{assignment_id}", assignment_id,
                                   solved_release(assignment_id), copies)
    for parallel in (1, 2):
        figures[f"floor_s_{parallel}"] = round(floor(assignment_id, copies, parallel, tmp), 3)
        seconds, results = timed_grade(submissions, tmp / f"out-{assignment_id}-{parallel}",
                                       assignments=[assignment_id], workers=parallel)
        assert all(r.score == r.max_score for r in results), "a perfect submission lost points"
        figures[f"grading_s_{parallel}"] = round(seconds / copies, 3)
        figures[f"ratio_{parallel}"] = round(figures[f"grading_s_{parallel}"]
                                             / figures[f"floor_s_{parallel}"], 2)
    figures["speedup_2_vs_1"] = round(figures["grading_s_1"] / figures["grading_s_2"], 2)
    if dask:
        local_s, dask_s = compare_with_dask(assignment_id, submissions, tmp)
        figures["dask_grading_s"] = round(dask_s / copies, 3)
        figures["dask_throughput_vs_local"] = round(local_s / dask_s, 2)
    return figures


def compare_with_dask(assignment_id: str, submissions: Path, tmp: Path,
                      rounds: int = 3) -> tuple[float, float]:
    """Seconds to grade ``submissions`` with two local workers and through a local Dask cluster of two
    workers, each averaged over ``rounds`` runs taken in turn (this machine's speed drifts by a fifth
    over minutes, more than the difference measured)."""
    cluster = LocalCluster(2)
    local_s = dask_s = 0.0
    try:
        for round_ in range(rounds):
            seconds, _ = timed_grade(submissions, tmp / f"out-{assignment_id}-local-{round_}",
                                     assignments=[assignment_id], workers=2)
            local_s += seconds
            seconds, results = timed_grade(submissions, tmp / f"out-{assignment_id}-dask-{round_}",
                                           assignments=[assignment_id], scheduler=cluster.address)
            assert all(r.score == r.max_score for r in results), "a perfect submission lost points on Dask"
            dask_s += seconds
    finally:
        cluster.stop()
    return local_s / rounds, dask_s / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--assignments", nargs="+",
                        default=["ex01_attention_basics", "ex03_self_attention"])
    parser.add_argument("--dask", action="store_true", help="also grade through a local Dask cluster")
    parser.add_argument("--class-size", type=int, default=0, help="time this many solved submissions")
    parser.add_argument("--runaway", action="store_true", help="time a submission that ignores interrupts")
    args = parser.parse_args()
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for assignment_id in args.assignments:
            report[assignment_id] = bench_assignment(assignment_id, args.copies, tmp_path, args.dask)
            print(assignment_id, json.dumps(report[assignment_id]), flush=True)
        if args.class_size:
            assignment_id = args.assignments[0]
            big = make_submissions(tmp_path / "class", assignment_id, solved_release(assignment_id),
                                   args.class_size)
            seconds, _ = timed_grade(big, tmp_path / "out-class", assignments=[assignment_id], workers=2)
            report["class"] = {"assignment": assignment_id, "submissions": args.class_size, "workers": 2,
                               "seconds": round(seconds, 1)}
            print("class", json.dumps(report["class"]), flush=True)
        if args.runaway:
            runaway = copy.deepcopy(solved_release(args.assignments[0]))
            answer = next(c for c in runaway.cells if nbgrader_meta(c).get("solution"))
            answer.source = "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n" \
                            "    except KeyboardInterrupt:\n        pass\n" + answer.source
            folder = make_submissions(tmp_path / "runaway", args.assignments[0], runaway, 1)
            limits = Limits(cell_timeout=5, wall_seconds=20)
            _, results = timed_grade(folder, tmp_path / "out-runaway", limits, workers=1)
            report["runaway"] = {"wall_limit_s": limits.wall_seconds, "seconds": results[0].seconds,
                                 "status": results[0].status}
            print("runaway", json.dumps(report["runaway"]), flush=True)
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "bench_grading.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
