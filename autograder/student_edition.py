"""The student edition: what students get, without solutions, hidden tests or grading data.

``python -m autograder student-edition OUT`` writes, from an allow-list (nothing else is copied):

- ``exercises/``: the release notebooks (``python -m autograder release`` makes them from ``solutions/``);
- ``book/``, ``_config.yml``, ``_toc.yml``: the book's sources (``jupyter-book build .`` builds it);
- ``autograder/``: only the self-check (``python -m autograder check``) and the checks test cells call;
- ``requirements.txt``, ``environment.yml``: the pinned environment, and a ``pyproject.toml`` and
  ``scripts/setup`` that install it with the ``autograder`` package;
- ``nbgrader_config.py``: the course id and the exchange, for nbgrader's Assignment List and its
  ``fetch_assignment`` / ``submit`` / ``fetch_feedback`` commands;
- ``README.md`` for students.

Never: ``solutions/``, ``tests/`` (other correct solutions), ``grading/`` (gradebook, submissions,
feedback), the grading tool, ``CONTRIBUTING.md``. OUT may be an earlier edition (a git clone of the
published repository): its files are replaced, its ``.git`` is kept.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from autograder.settings import COURSE_ID, COURSE_ROOT, EXCHANGE_ROOT, IGNORED_FILES, RELEASE_DIR

MARKER = ".student-edition"
AUTOGRADER_MODULES = ["__init__.py", "__main__.py", "check.py", "checks.py", "feedback.py", "settings.py"]
COPIED_FILES = ["requirements.txt", "environment.yml", "_config.yml", "_toc.yml"]
COPIED_FOLDERS = ["book", RELEASE_DIR]
KEPT = {".git"}

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "attention-course-student"
version = "0.1.0"
description = "Attention mechanisms, from human attention to Transformers: student edition"
requires-python = ">=3.11,<3.12"
license = "MIT"

[tool.setuptools]
packages = ["autograder"]
"""

NBGRADER_CONFIG = '''\
"""nbgrader settings for students of the course (written by `python -m autograder student-edition`).

The course id and the exchange: where your instructor releases assignments and collects what you
submit. `bash scripts/setup` registers this file with the environment, so JupyterLab's Assignment List
and `nbgrader fetch_assignment`, `submit`, `fetch_feedback` use it from any folder.
"""

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {exchange_root!r}
'''

SETUP = """\
#!/usr/bin/env bash
# Create the course environment in .venv from the pinned requirements.txt (first run only), install
# the course's check tool, and register the course's nbgrader settings (nbgrader_config.py).
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null \\
        && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin=$candidate; break
    fi
  done
fi
if [ -z "$python_bin" ]; then
  echo "error: the course needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi
stamp=.venv/.course-requirements
wanted=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "==> installing the pinned requirements (torch is the CPU build)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "pip==26.3"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$wanted" > "$stamp"
fi
mkdir -p .venv/etc/jupyter
cat > .venv/etc/jupyter/nbgrader_config.py <<PY
# Written by scripts/setup: the course's nbgrader settings.
load_subconfig("$(pwd)/nbgrader_config.py")
PY
echo "==> ready: source .venv/bin/activate && jupyter lab"
"""

GITIGNORE = """\
.venv/
_build/
__pycache__/
*.pyc
.ipynb_checkpoints/
*.egg-info/
"""

README = """\
# Attention, from human attention to Transformers (student edition)

An open course on attention mechanisms: a book whose chapters are executed notebooks (`book/`), one
graded exercise per chapter (`exercises/`), and a tool that checks your work. Everything runs on a
laptop CPU; all data is made by code in the course.

| # | exercise |
|---|---|
{exercise_rows}

## Set up once
With Python 3.11 on Linux or macOS:

```bash
bash scripts/setup            # creates .venv with the pinned packages (first run only)
source .venv/bin/activate
```

On Linux, if pip starts downloading the multi-GB CUDA build of PyTorch, use the CPU build instead:
`PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup`.

## Read
Read the book your instructor published, or build it here: `jupyter-book build .` executes every
chapter (a few minutes) and writes `_build/html/index.html`.

## Do an exercise
1. `jupyter lab`, then open `exercises/<id>/<id>.ipynb` (or the copy you fetched, see below).
2. Read each task and replace `raise NotImplementedError()` in the answer cells. Leave the test
   cells as they are: they are restored before grading.
3. Check your work:

   ```bash
   python -m autograder check exercises/{first_id}/{first_id}.ipynb
   ```

   It runs the notebook top to bottom in a fresh kernel and prints each visible test, with a hint
   when one fails; it exits with 0 only when all of them pass. JupyterLab's **Validate** button runs the
   same visible tests. Hidden tests, run when your work is graded, check more cases: a function that
   is right in general passes them.

## Hand in, get feedback
If your class uses nbgrader's exchange (a shared JupyterHub or server; course `{course_id}`, exchange
`{exchange_root}`, both set in `nbgrader_config.py`): in JupyterLab's **Assignment List**, *Fetch*
the assignment, work in the fetched copy, *Submit* it (you may submit again: the latest submission is
graded), and later *Fetch Feedback*. The same from a terminal:

```bash
nbgrader fetch_assignment {first_id}     # copies it into ./{first_id}/
nbgrader submit {first_id}               # hands in ./{first_id}/
nbgrader fetch_feedback {first_id}       # ./{first_id}/feedback/<time>/{first_id}.html
```

Otherwise hand in `<id>.ipynb` as your instructor asks, under its own name.

## License
Text and code: MIT.
"""


class EditionError(RuntimeError):
    """The edition cannot be written where asked; the message says why."""


def _exercise_ids(root: Path) -> list[str]:
    release = root / RELEASE_DIR
    return sorted(p.name for p in release.iterdir() if (p / f"{p.name}.ipynb").is_file())


def _prepare(out: Path) -> None:
    """Make ``out`` an empty folder, keeping ``.git``; refuse a non-empty folder we did not write."""
    if out.exists() and not out.is_dir():
        raise EditionError(f"{out} exists and is not a folder")
    if out.is_dir():
        entries = [p for p in out.iterdir() if p.name not in KEPT]
        if entries and not (out / MARKER).is_file():
            raise EditionError(f"{out} is not empty and holds no earlier student edition ({MARKER}); "
                               "choose an empty or new folder")
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _source_commit(root: Path) -> str:
    completed = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return completed.stdout.strip() if completed.returncode == 0 else "unknown"


def build(out: Path, root: Path = COURSE_ROOT, exchange_root: str = EXCHANGE_ROOT,
          course_id: str = COURSE_ID) -> list[Path]:
    """Write the student edition of the course at ``root`` to ``out``; return the files written."""
    out = out.resolve()
    root = root.resolve()
    if out == root or out in root.parents or root in out.parents:
        raise EditionError(f"write the edition outside the course folder {root}, not to {out}")
    ids = _exercise_ids(root)
    if not ids:
        raise EditionError(f"no released exercises in {root / RELEASE_DIR}: "
                           "run `python -m autograder release`")
    _prepare(out)
    ignore = shutil.ignore_patterns(*IGNORED_FILES)
    for name in COPIED_FOLDERS:
        shutil.copytree(root / name, out / name, ignore=ignore)
    for name in COPIED_FILES:
        shutil.copy2(root / name, out / name)
    (out / "autograder").mkdir()
    for name in AUTOGRADER_MODULES:
        shutil.copy2(root / "autograder" / name, out / "autograder" / name)
    (out / "scripts").mkdir()
    (out / "scripts" / "setup").write_text(SETUP)
    (out / "scripts" / "setup").chmod(0o755)
    (out / "pyproject.toml").write_text(PYPROJECT)
    (out / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(course_id=course_id,
                                                                   exchange_root=str(exchange_root)))
    (out / ".gitignore").write_text(GITIGNORE)
    rows = "\n".join(f"| {number} | `{assignment_id}` |" for number, assignment_id in enumerate(ids, 1))
    (out / "README.md").write_text(README.format(exercise_rows=rows, first_id=ids[0], course_id=course_id,
                                                 exchange_root=exchange_root))
    (out / MARKER).write_text(f"Student edition of {root.name}, built from commit {_source_commit(root)}.\n"
                              "Rebuild it with `python -m autograder student-edition` in the course.\n")
    return sorted(p for p in out.rglob("*") if p.is_file() and ".git" not in p.relative_to(out).parts)
