"""An IPython kernel that imports the course's libraries before it starts listening.

    python -m autograder.kernel --preload numpy,torch -f CONNECTION_FILE

Used where the grader cannot fork isolated kernels from its kernel factory
(:mod:`autograder.kernel_factory`, which imports the libraries once for all its kernels): each kernel
is then started on its own, ahead of need (while the previous submission's feedback is rendered). The
factory uses :func:`preload` too. A module that fails to import is skipped: the notebook's own import
will report the error where the student can see it. Nothing else is run, and no name is bound in the
notebook's namespace; the notebook behaves exactly as in a plain kernel.
"""

from __future__ import annotations

import importlib
import sys


def preload(modules: list[str]) -> None:
    """Import ``modules`` (errors ignored), so the notebook's own imports find them in ``sys.modules``."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - the notebook's import reports it
            continue


def main(argv: list[str]) -> None:
    modules: list[str] = []
    if argv[:1] == ["--preload"]:
        modules = [m for m in argv[1].split(",") if m]
        argv = argv[2:]
    preload(modules)
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
