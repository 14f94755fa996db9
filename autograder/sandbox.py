"""Start a student's IPython kernel inside limits, and inside bubblewrap where it is available.

Used as the ``argv`` of the kernelspec that the grader installs in each submission's workspace::

    python -m autograder.sandbox --workspace DIR --runtime DIR --memory-mb N [--preload numpy,torch] \
        -- -f {connection_file}
    python -m autograder.sandbox --factory --workspace DIR --runtime DIR --memory-mb N [--preload ...]

The second form runs a kernel factory (:mod:`autograder.kernel_factory`) in the same sandbox, with
``DIR`` (the folder of all its kernels) writable.

Inside bubblewrap (``bwrap``) the kernel sees a read-only system and Python, the course's
``autograder`` package (for the test cells' checks), and nothing of the repository, the instructor's
files, other submissions or the gradebook; only its own workspace is writable, and it has no network.
The kernel talks to the grader over Unix sockets (ZeroMQ ``ipc`` transport) in the workspace.
Without bubblewrap, the same resource limits apply but the file system is not hidden.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import sysconfig
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# What every student kernel runs with, sandboxed or not: no display, and one OpenMP thread (two
# kernels with a thread per core each on a 2-core machine slow each other down).
KERNEL_ENV = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


def bwrap_path() -> str | None:
    """Return the path of a working ``bwrap``, or None."""
    return shutil.which("bwrap")


def _readonly_roots() -> list[Path]:
    """Directories the kernel needs to read: the system, the Python install and the environment."""
    candidates = [Path(p) for p in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc")]
    candidates += [Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).resolve().parent]
    candidates += [Path(sysconfig.get_paths()["purelib"]), PACKAGE_DIR]
    roots: list[Path] = []
    for path in candidates:
        if path.exists() and path.resolve() not in roots:
            roots.append(path.resolve())
    return roots


def bwrap_command(writable: list[Path], kernel_argv: list[str]) -> list[str]:
    """The bubblewrap command line that runs ``kernel_argv`` with only the ``writable`` folders writable
    (a kernel's workspace and the runtime folder of its connection file and sockets, or the folder of
    a kernel factory's kernels)."""
    command = [
        bwrap_path() or "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
    ]
    for root in _readonly_roots():
        command += ["--ro-bind", str(root), str(root)]
    # Symlinked top-level directories (e.g. /lib -> usr/lib on merged-/usr systems).
    for name in ("lib", "lib64", "bin", "sbin"):
        link = Path("/") / name
        if link.is_symlink():
            command += ["--symlink", os.readlink(link), str(link)]
    for folder in writable:
        command += ["--bind", str(folder), str(folder)]
    command += [
        "--chdir", os.getcwd(),
        "--clearenv",
        "--setenv", "HOME", "/tmp",
        "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "--setenv", "MPLCONFIGDIR", "/tmp",
        "--setenv", "IPYTHONDIR", "/tmp/.ipython",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
    ]
    for name, value in KERNEL_ENV.items():
        command += ["--setenv", name, value]
    return [*command, "--", *kernel_argv]


def apply_limits(memory_mb: int, file_mb: int = 512) -> None:
    """Limit the memory this process (and the kernel it becomes) may allocate, and file sizes."""
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    file_size = file_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--runtime", type=Path, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--no-bwrap", action="store_true")
    parser.add_argument("--preload", default="", help="modules the kernel imports before it starts")
    parser.add_argument("--factory", action="store_true",
                        help="run a kernel factory (autograder.kernel_factory) for kernels in --workspace")
    parser.add_argument("kernel_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    kernel_args = [a for a in args.kernel_args if a != "--"]
    isolated = not args.no_bwrap and bwrap_path() is not None
    if args.factory:
        kernel_argv = [sys.executable, "-m", "autograder.kernel_factory", "--root", str(args.workspace),
                       "--preload", args.preload, *(["--isolate"] if isolated else [])]
    else:
        kernel_argv = [sys.executable, "-m", "autograder.kernel", "--preload", args.preload, *kernel_args]
    apply_limits(args.memory_mb)
    if isolated:
        command = bwrap_command([args.workspace.resolve(), args.runtime.resolve()], kernel_argv)
    else:
        command = kernel_argv
        os.environ.update(KERNEL_ENV)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
