"""nbgrader configuration of the course.

nbgrader reads ``nbgrader_config.py`` from the current directory and from Jupyter's config path.
``bash scripts/build`` installs a one-line loader of this file into the virtual environment's
``etc/jupyter`` so that every ``nbgrader`` command run with the course environment uses it, from
any directory: the course root and the gradebook are absolute paths, so nbgrader never creates a
stray ``gradebook.db`` next to wherever it was started.

The grading tool (``python -m autograder``) builds the same settings through
:func:`autograder.settings.course_config`, which is the single source of truth; this file only
exposes them to nbgrader's own command line and JupyterLab extension.
"""

import contextlib
import sys
from pathlib import Path

_course_root = Path(__file__).resolve().parent.parent
if str(_course_root) not in sys.path:
    sys.path.insert(0, str(_course_root))

from autograder.settings import course_config  # noqa: E402

c = get_config()
c.merge(course_config(_course_root))
# The gradebook and submissions live here (git-ignored). A user who may not write here (a student using
# the instructor's environment) still gets the course id and the exchange.
with contextlib.suppress(OSError):
    (_course_root / "grading").mkdir(exist_ok=True)
