"""Generate the student notebooks in ``exercises/`` from the sources in ``solutions/``.

nbgrader's ``generate_assignment`` does the work (solutions replaced by stubs, hidden tests removed,
checksums added to locked cells). It runs in a throwaway course with a throwaway gradebook, so
releasing never leaves a ``gradebook.db`` in the repository.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from autograder.engine import assignment_ids, make_template
from autograder.settings import COURSE_ROOT, RELEASE_DIR


def generate_release(assignment_id: str, out_dir: Path) -> Path:
    """Write the release of ``assignment_id`` to ``out_dir/<id>/`` (replacing it); return that folder."""
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        course = make_template(assignment_id, Path(tmp) / "course")
        target = out_dir / assignment_id
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(course / "release" / assignment_id, target)
    return target


def release(ids: list[str] | None = None, out_dir: Path = COURSE_ROOT / RELEASE_DIR) -> list[Path]:
    """Regenerate the releases of ``ids`` (default: every assignment in ``solutions/``)."""
    chosen = ids or assignment_ids()
    unknown = sorted(set(chosen) - set(assignment_ids()))
    if unknown:
        raise SystemExit(f"unknown assignment(s): {', '.join(unknown)}; known: {', '.join(assignment_ids())}")
    return [generate_release(assignment_id, out_dir) for assignment_id in chosen]
