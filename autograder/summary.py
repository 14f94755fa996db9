"""The instructor's summary of a grading run: pass rate per test and score distribution."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path

from autograder.engine import Result


def by_assignment(results: list[Result]) -> dict[str, list[Result]]:
    """The results grouped by assignment id, in sorted order."""
    groups: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        groups[result.assignment_id].append(result)
    return dict(sorted(groups.items()))


def pass_rates(rows: list[Result]) -> dict[str, tuple[int, int]]:
    """For each test cell: (submissions with its full points, graded submissions)."""
    graded = [r for r in rows if r.tests]
    tests = list(dict.fromkeys(name for r in graded for name in r.tests))
    rates = {}
    for name in tests:
        full = max(r.tests.get(name, 0.0) for r in graded)
        passed = sum(1 for r in graded if full > 0 and r.tests.get(name, 0.0) >= full)
        rates[name] = (passed, len(graded))
    return rates


def summary_text(results: list[Result]) -> str:
    """Per assignment: submissions by status, score statistics and each test's pass rate."""
    lines: list[str] = []
    for assignment_id, rows in by_assignment(results).items():
        scores = sorted(r.score for r in rows)
        maximum = max(r.max_score for r in rows)
        statuses = Counter(r.status for r in rows)
        lines.append(f"{assignment_id}: {len(rows)} submission(s), max score {maximum:g}")
        lines.append("  status: " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())))
        lines.append(f"  score: mean {statistics.mean(scores):.2f}, median {statistics.median(scores):g}, "
                     f"min {scores[0]:g}, max {scores[-1]:g}")
        rates = pass_rates(rows)
        if rates:
            lines.append("  pass rate per test (full points):")
        for name, (passed, graded) in rates.items():
            lines.append(f"    {name:<40} {passed}/{graded} ({100 * passed / graded:.0f}%)")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, results: list[Result]) -> None:
    """Write ``summary.txt`` and ``summary.png`` to ``out``.

    The plot has one column per assignment: the score histogram on top, each test's pass rate below.
    """
    (out / "summary.txt").write_text(summary_text(results) if results else "no submissions found\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    groups = by_assignment(results) or {"(none)": []}
    rates_by_group = {assignment_id: pass_rates(rows) for assignment_id, rows in groups.items()}
    bars_height = 0.3 * max(4, *(len(rates) for rates in rates_by_group.values()))
    fig, axes = plt.subplots(2, len(groups), figsize=(6 * len(groups), 3 + bars_height),
                             squeeze=False, height_ratios=[3, bars_height])
    for (top, bottom), (assignment_id, rows) in zip(axes.T, groups.items(), strict=True):
        maximum = max((r.max_score for r in rows), default=1.0) or 1.0
        top.hist([r.score for r in rows], bins=10, range=(0, maximum), color="tab:blue", edgecolor="white")
        top.set_title(f"{assignment_id} ({len(rows)} submissions)", fontsize=9)
        top.set_xlabel(f"score (out of {maximum:g})")
        top.set_ylabel("submissions")
        top.yaxis.set_major_locator(MaxNLocator(integer=True))
        rates = rates_by_group[assignment_id]
        names = list(rates)[::-1]
        bottom.barh(names, [100 * rates[n][0] / rates[n][1] for n in names], color="tab:green")
        bottom.set_xlim(0, 100)
        bottom.set_xlabel("submissions with full points (%)")
        bottom.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=100)
    plt.close(fig)
