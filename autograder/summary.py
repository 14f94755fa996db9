"""The instructor's summary of a grading run: pass rate per test and score distribution."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path

from autograder.engine import Result


def summary_text(results: list[Result]) -> str:
    """Per assignment: submissions by status, score statistics and each test's pass rate."""
    lines: list[str] = []
    by_assignment: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_assignment[result.assignment_id].append(result)
    for assignment_id, rows in sorted(by_assignment.items()):
        scores = sorted(r.score for r in rows)
        maximum = max(r.max_score for r in rows)
        statuses = Counter(r.status for r in rows)
        lines.append(f"{assignment_id}: {len(rows)} submission(s), max score {maximum:g}")
        lines.append("  status: " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())))
        lines.append(f"  score: mean {statistics.mean(scores):.2f}, median {statistics.median(scores):g}, "
                     f"min {scores[0]:g}, max {scores[-1]:g}")
        graded = [r for r in rows if r.tests]
        tests = list(dict.fromkeys(name for r in graded for name in r.tests))
        if tests:
            lines.append("  pass rate per test (full points):")
        for name in tests:
            full = max(r.tests.get(name, 0.0) for r in graded)
            passed = sum(1 for r in graded if full > 0 and r.tests.get(name, 0.0) >= full)
            lines.append(f"    {name:<40} {passed}/{len(graded)} ({100 * passed / len(graded):.0f}%)")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, results: list[Result]) -> None:
    """Write ``summary.txt`` and ``summary.png`` (score histogram per assignment) to ``out``."""
    (out / "summary.txt").write_text(summary_text(results) if results else "no submissions found\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assignments = sorted({r.assignment_id for r in results}) or ["(none)"]
    fig, axes = plt.subplots(1, len(assignments), figsize=(4 * len(assignments), 3), squeeze=False)
    for ax, assignment_id in zip(axes[0], assignments, strict=True):
        rows = [r for r in results if r.assignment_id == assignment_id]
        maximum = max((r.max_score for r in rows), default=1.0) or 1.0
        ax.hist([r.score for r in rows], bins=10, range=(0, maximum), color="tab:blue", edgecolor="white")
        ax.set_title(assignment_id, fontsize=9)
        ax.set_xlabel("score")
        ax.set_ylabel("submissions")
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=100)
    plt.close(fig)
