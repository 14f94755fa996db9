"""Due dates and submission times.

``nbgrader submit`` records when a student submitted in ``timestamp.txt``; ``nbgrader collect`` keeps it
in ``grading/submitted/<student>/<assignment>/``. The grading tool compares it with a due date given on
its command line (``--due ID=WHEN``) and says in the row when a submission came late. It flags, it does
not deduct: a late policy is the instructor's (or the LMS's) decision.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dateutil.parser
import dateutil.tz

TIMESTAMP_FILE = "timestamp.txt"


def parse_time(text: str) -> datetime:
    """An aware datetime from a time with its zone; raise ValueError without one.

    Accepted: ``2026-03-01T17:00+01:00``, ``2026-03-01 16:00 UTC``, ``2026-03-01 17:00 Europe/Berlin``
    (nbgrader's own due-date form). A time without a zone is refused: read on another machine, it
    would mean another moment.
    """
    text = text.strip()
    head, _, zone = text.rpartition(" ")
    tz = dateutil.tz.gettz(zone) if head and zone and not zone[0].isdigit() else None
    try:
        when = dateutil.parser.parse(head if tz else text)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"cannot read the time {text!r}: {error}") from error
    if tz is not None and when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    if when.tzinfo is None:
        raise ValueError(f"the time {text!r} has no time zone: write e.g. '2026-03-01 17:00 Europe/Berlin', "
                         "'2026-03-01 16:00 UTC' or '2026-03-01T17:00+01:00'")
    return when.astimezone(UTC)


def parse_due_dates(values: list[str] | None) -> dict[str, datetime]:
    """``["ex01_attention_basics=2026-03-01 17:00 Europe/Berlin", ...]`` -> {assignment id: due time}."""
    due: dict[str, datetime] = {}
    for value in values or []:
        assignment_id, sep, when = value.partition("=")
        if not sep or not assignment_id.strip():
            raise ValueError(f"--due needs ASSIGNMENT=TIME, got {value!r}")
        due[assignment_id.strip()] = parse_time(when)
    return due


def submission_time(folder: Path) -> datetime | None:
    """When the submission in ``folder`` was made, from nbgrader's ``timestamp.txt`` (None if absent)."""
    from nbgrader.utils import parse_utc

    path = folder / TIMESTAMP_FILE
    if not path.is_file():
        return None
    try:
        naive_utc = parse_utc(path.read_text().strip())
    except (ValueError, OverflowError):
        return None
    return naive_utc.replace(tzinfo=UTC) if naive_utc else None


def duration(delta: timedelta) -> str:
    """A short human reading of a positive duration: "2 d 3 h", "1 h 5 min", "42 s"."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{max(seconds, 1)} s"


def late_note(submitted: datetime | None, due: datetime) -> str:
    """The sentence a row gets about lateness ("" for a submission on time)."""
    if submitted is None:
        return f"no submission time recorded ({TIMESTAMP_FILE}), so lateness was not checked"
    if submitted <= due:
        return ""
    return (f"late: submitted {submitted:%Y-%m-%d %H:%M:%S} UTC, {duration(submitted - due)} after the due "
            f"date {due:%Y-%m-%d %H:%M:%S} UTC")
