"""nbgrader's exchange end to end, with real separate users and nbgrader's own commands.

The instructor releases an exercise (``nbgrader release_assignment``); students, each a real OS user,
``fetch_assignment``, work, ``submit``; the instructor ``collect``s, grades with
``python -m autograder grade`` and ``release_feedback``s; each student ``fetch_feedback``s and finds the
feedback of their own latest submission. nbgrader takes a student's identity from the OS user, or from
``JUPYTERHUB_USER`` when the OS user is ``jovyan`` (a JupyterHub whose servers are containers): that
is how ids such as long e-mail addresses with spaces or non-ASCII letters reach the exchange.

Students use the student edition's ``nbgrader_config.py`` (course id and exchange), as they would after
its ``scripts/setup``. Along the way: a student submits twice (the latest is collected and graded,
the first is not lost), one submits after the due date (collected, graded, flagged), one tries to
submit an assignment that was never released (nbgrader refuses), one on the roster never submits (a
``no submission`` row), and the instructor grades with a restrictive umask (feedback stays readable).

Needs root (to create users), ``useradd``/``userdel``, and ``unshare``/``mount``/``setpriv``: students'
commands run in a private mount namespace in which the environment's Python is reachable (here it lives
under a home directory other users may not enter), without changing anything outside it. Skipped, with
the reason, where any of this is missing. Users and files are removed afterwards.
"""

from __future__ import annotations

import csv
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENTS, EXERCISES, ROOT, solved_release

ASSIGNMENT = ASSIGNMENTS[0]
UNRELEASED = ASSIGNMENTS[1]
BIN = Path(sys.executable).parent
# The OS users this test creates (and removes) carry the test process's id, so two runs on one
# machine (a developer's and CI's) never share, or delete, each other's users.
USER_PATTERN = re.compile(r"c14t(\d+)-")
PREFIX = f"c14t{os.getpid()}-"
HUB_USER = "jovyan"  # nbgrader reads JUPYTERHUB_USER only for this OS user (nbgrader.utils.get_username)
LONG_ID = ("zoë.müller-lüdenscheidt.with.a.rather.long.address.for.testing@"
           "students.universität-beispiel.example.org")
SPACED_ID = "ana maría lópez"
TIMEOUT = 600


def users_of_other_runs() -> list[tuple[str, bool]]:
    """The OS users of other runs of this test on this machine, each with whether its run is alive."""
    found = []
    for account in pwd.getpwall():
        match = USER_PATTERN.match(account.pw_name)
        if match and match.group(1) != str(os.getpid()):
            found.append((account.pw_name, Path(f"/proc/{match.group(1)}").exists()))
    return found


@dataclass(frozen=True)
class Identity:
    """A student as nbgrader sees them: the OS user their commands run as, and their student id."""

    student_id: str
    os_user: str
    home: Path

    @property
    def via_hub(self) -> bool:
        return self.os_user == HUB_USER


def missing_prerequisite() -> str | None:
    """Why this test cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "needs Linux (users, mount namespaces)"
    if os.geteuid() != 0:
        return "needs root to create the students' OS users (CI runs as root)"
    for tool in ("useradd", "userdel", "unshare", "setpriv", "mount"):
        if not shutil.which(tool):
            return f"needs the '{tool}' command"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a mount namespace here: {probe.stderr.strip()}"
    return None


def blocking_ancestor(path: Path) -> Path | None:
    """The outermost folder on the way to ``path`` that other users may not enter (no o+x), if any."""
    for ancestor in reversed(path.parents):
        if ancestor != Path("/") and not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return ancestor
    return None


def namespace_script(needed: list[Path], stage: Path, overlays: dict[Path, Path]) -> str:
    """Shell commands, run as root in a private mount namespace, that let students reach ``needed``.

    A folder other users may not enter (e.g. ``/root``, when the environment's Python lives in it) is
    covered by an empty tmpfs in which only the needed paths are bound back. ``overlays`` maps files to
    the files shown in their place (the instructor's nbgrader config -> the student edition's).
    """
    lines = ["set -e"]
    groups: dict[Path, list[Path]] = {}
    needed = [p for p in dict.fromkeys(needed) if not any(q in p.parents for q in needed)]
    for path in needed:
        blocker = blocking_ancestor(path)
        if blocker is not None:
            groups.setdefault(blocker, []).append(path)
    for number, (blocker, paths) in enumerate(groups.items()):
        staged = [stage / f"{number}-{index}" for index in range(len(paths))]
        for path, place in zip(paths, staged, strict=True):
            lines += [f"mkdir -p {shlex.quote(str(place))}", f"mount --bind {shlex.quote(str(path))} "
                      f"{shlex.quote(str(place))}"]
        lines.append(f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(str(blocker))}")
        for path, place in zip(paths, staged, strict=True):
            lines += [f"mkdir -p {shlex.quote(str(path))}", f"mount --bind {shlex.quote(str(place))} "
                      f"{shlex.quote(str(path))}"]
    for target, shown in overlays.items():
        lines.append(f"mount --bind {shlex.quote(str(shown))} {shlex.quote(str(target))}")
    return "\n".join(lines) + "\n"


class Classroom:
    """The users, folders and commands of one run; removes its users when closed."""

    def __init__(self, base: Path):
        self.base = base
        self.exchange = base / "exchange"
        self.course = base / "course"
        self.edition = base / "edition"
        self.public = base / "public"
        self.created: list[str] = []
        self.script = ""
        self.timings: list[tuple[str, float]] = []  # (command, seconds): printed with pytest -s

    def run(self, label: str, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        start = time.monotonic()
        completed = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
        self.timings.append((label, time.monotonic() - start))
        return completed

    def add_user(self, name: str) -> pwd.struct_passwd:
        """The OS user ``name``, created (and later removed) unless it exists and is not ours."""
        try:
            existing = pwd.getpwnam(name)
        except KeyError:
            existing = None
        if existing is None:
            subprocess.run(["useradd", "--no-create-home", "--home-dir", str(self.base / "home" / name),
                            "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
            self.created.append(name)
        return pwd.getpwnam(name)

    @staticmethod
    def remove_users_of_aborted_runs() -> None:  # their own users; a leftover jovyan is simply reused
        """Delete the users left by earlier runs of this test whose process is gone."""
        for name, alive in users_of_other_runs():
            if not alive:
                subprocess.run(["userdel", name], capture_output=True)

    def student(self, student_id: str, os_user: str, home_name: str) -> Identity:
        account = self.add_user(os_user)
        home = self.base / "home" / home_name
        home.mkdir(parents=True)
        os.chown(home, account.pw_uid, account.pw_gid)
        home.chmod(0o700)
        return Identity(student_id, os_user, home)

    def as_student(self, who: Identity, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``argv`` as ``who``: their OS user, home and (on a hub) JUPYTERHUB_USER; nothing else."""
        account = pwd.getpwnam(who.os_user)
        env = {"HOME": str(who.home), "PATH": f"{BIN}:/usr/bin:/bin", "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1"}
        if who.via_hub:
            env["JUPYTERHUB_USER"] = who.student_id
        assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        script = (self.script + f"exec setpriv --reuid={account.pw_uid} --regid={account.pw_gid} "
                  f"--init-groups -- env -i {assignments} \"$@\"\n")
        command = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *argv]
        completed = self.run(f"{who.home.name}: {' '.join(Path(a).name for a in argv[:3])}", command,
                             cwd=who.home)
        if check:
            assert completed.returncode == 0, (f"{who.student_id}: {' '.join(argv)} failed\n"
                                               f"{completed.stdout}\n{completed.stderr}")
        return completed

    def nbgrader(self, who: Identity, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.as_student(who, str(BIN / "nbgrader"), *args, check=check)

    def instructor(self, *argv: str, umask: int = 0o022) -> subprocess.CompletedProcess:
        """Run ``argv`` as the instructor, in the course folder (whose nbgrader_config.py applies)."""
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
        completed = self.run(f"instructor: {' '.join(Path(a).name for a in argv[:4])}", list(argv),
                             cwd=self.course, env=env, preexec_fn=lambda: os.umask(umask))
        assert completed.returncode == 0, f"{' '.join(argv)} failed\n{completed.stdout}\n{completed.stderr}"
        return completed

    def close(self) -> None:
        for name in self.created:
            if name == HUB_USER and any(alive for _, alive in users_of_other_runs()):
                continue  # shared by every run; the last one removes it
            subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def build_classroom(room: Classroom) -> None:
    """Folders, the student edition, the instructor's course and configuration, the roster."""
    for folder in (room.exchange, room.public):
        folder.mkdir()
    room.exchange.chmod(0o1777)  # as the README says: sudo install -d -m 1777 /srv/nbgrader/exchange
    (room.base / "home").mkdir()
    (room.base / "stage").mkdir(mode=0o700)
    completed = subprocess.run([sys.executable, "-m", "autograder", "student-edition", str(room.edition),
                                "--exchange-root", str(room.exchange)],
                               cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    room.course.mkdir(mode=0o700)  # students never need the instructor's files
    (room.course / "grading").mkdir()  # the course's nbgrader_config.py makes it in a real course
    shutil.copytree(EXERCISES / ASSIGNMENT, room.course / "exercises" / ASSIGNMENT)
    (room.course / "nbgrader_config.py").write_text(
        "c = get_config()\n"  # read after the course's configuration: this test's course and exchange
        f"c.CourseDirectory.root = {str(room.course)!r}\n"
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(room.course / 'grading' / 'gradebook.db')!r}\n"
        f"c.Exchange.root = {str(room.exchange)!r}\n")
    solved = room.public / "solved.ipynb"
    nbformat.write(solved_release(ASSIGNMENT), solved)
    solved.chmod(0o644)
    unreleased = room.public / f"{UNRELEASED}.ipynb"
    shutil.copyfile(EXERCISES / UNRELEASED / f"{UNRELEASED}.ipynb", unreleased)
    unreleased.chmod(0o644)


@pytest.fixture(scope="module")
def classroom():
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="attention-exchange-", dir="/tmp"))  # a place every user can reach
    base.chmod(0o755)
    Classroom.remove_users_of_aborted_runs()
    room = Classroom(base)
    try:
        build_classroom(room)
        needed = [ROOT, Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent]
        instructor_config = BIN.parent / "etc" / "jupyter" / "nbgrader_config.py"
        overlays = {instructor_config: room.edition / "nbgrader_config.py"}
        if not instructor_config.is_file():  # scripts/setup writes it; without it nothing needs hiding
            overlays = {}
        room.script = namespace_script(needed, base / "stage", overlays)
        yield room
    finally:
        room.close()


@pytest.fixture(scope="module")
def flow(classroom):
    """The whole class, in order; returns what the assertions need."""
    room = classroom
    alice = room.student(f"{PREFIX}alice", f"{PREFIX}alice", "alice")
    bob = room.student(f"{PREFIX}bob", f"{PREFIX}bob", "bob")
    carol = room.student(f"{PREFIX}carol", f"{PREFIX}carol", "carol")
    zoe = room.student(LONG_ID, HUB_USER, "hub-zoe")
    ana = room.student(SPACED_ID, HUB_USER, "hub-ana")
    probe = room.as_student(alice, str(BIN / "python"), "-c", "import nbformat, autograder.settings",
                            check=False)
    if probe.returncode != 0:
        pytest.skip(f"a student user cannot run the course environment: {probe.stderr.strip()[-300:]}")
    solved = str(room.public / "solved.ipynb")
    work = f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
    unreleased: list[subprocess.CompletedProcess] = []

    def student_works(who: Identity, steps: list[str]) -> None:
        """Fetch, then each step ("solve": copy a solved notebook in; "submit"), then submit."""
        room.nbgrader(who, "fetch_assignment", ASSIGNMENT)
        for step in steps:
            if step == "solve":
                room.as_student(who, "cp", solved, work)
            elif step == "submit":
                room.nbgrader(who, "submit", ASSIGNMENT)
        room.nbgrader(who, "submit", ASSIGNMENT)
        if "unreleased" in steps:  # then tries an assignment the instructor never released
            room.as_student(who, "mkdir", UNRELEASED)
            room.as_student(who, "cp", str(room.public / f"{UNRELEASED}.ipynb"), f"{UNRELEASED}/")
            unreleased.append(room.nbgrader(who, "submit", UNRELEASED, check=False))
            unreleased.append(room.nbgrader(who, "fetch_assignment", UNRELEASED, check=False))

    room.instructor(str(BIN / "nbgrader"), "release_assignment", ASSIGNMENT)
    listing = room.nbgrader(alice, "list")  # what JupyterLab's Assignment List shows
    # Students work at the same time (two at once); each one's own steps stay in order.
    plans = [(alice, ["solve", "unreleased"]), (bob, ["submit", "solve"]), (zoe, ["solve"]), (ana, [])]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda plan: student_works(*plan), plans))
    due = datetime.now(UTC)  # every submission so far was made before this moment, carol's after it
    student_works(carol, ["solve"])

    room.instructor(str(BIN / "nbgrader"), "collect", ASSIGNMENT)
    roster = room.course / "roster.csv"
    with open(roster, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id"], *[[w.student_id] for w in (alice, bob, carol, zoe, ana)],
                                      [f"{PREFIX}dave"]])
    grading = room.course / "grading"
    room.instructor(sys.executable, "-m", "autograder", "grade", str(grading / "submitted"),
                    "--out", str(grading), "--assignment", ASSIGNMENT, "--roster", str(roster),
                    "--due", f"{ASSIGNMENT}={due.isoformat()}", "--cell-timeout", "20", umask=0o077)
    room.instructor(str(BIN / "nbgrader"), "release_feedback", ASSIGNMENT)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda who: room.nbgrader(who, "fetch_feedback", ASSIGNMENT),
                      (alice, bob, carol, zoe, ana)))
    with open(grading / "grades.csv", newline="", encoding="utf-8") as handle:
        rows = {(r["student_id"], r["assignment_id"]): r for r in csv.DictReader(handle)}
    print("\n".join(f"{seconds:6.1f} s  {label}" for label, seconds in room.timings))
    print(f"{sum(s for _, s in room.timings):6.1f} s  in all")
    return {"room": room, "rows": rows, "grading": grading, "listing": listing, "due": due,
            "students": {"alice": alice, "bob": bob, "carol": carol, "zoe": zoe, "ana": ana},
            "unreleased": unreleased}


def row(flow, who: Identity) -> dict:
    return flow["rows"][(who.student_id, ASSIGNMENT)]


def full_marks(r: dict) -> bool:
    return r["status"] == "graded" and float(r["score"]) == float(r["max_score"]) > 0


def inbound(flow, student_id: str) -> list[Path]:
    folder = flow["room"].exchange / "attention-course" / "inbound"
    return sorted(p for p in folder.iterdir() if p.name.startswith(f"{student_id}+{ASSIGNMENT}+"))


@pytest.mark.slow
def test_students_see_the_released_assignment(flow):
    listing = flow["listing"]
    assert ASSIGNMENT in listing.stdout + listing.stderr, listing.stdout + listing.stderr
    assert "does not exist" not in listing.stdout + listing.stderr


@pytest.mark.slow
def test_every_student_gets_the_right_row(flow):
    s = flow["students"]
    for name in ("alice", "bob", "carol", "zoe"):
        assert full_marks(row(flow, s[name])), (name, row(flow, s[name]))
    ana = row(flow, s["ana"])
    assert ana["status"] == "graded" and float(ana["score"]) == 0, "submitted unchanged: graded, 0 points"
    dave = flow["rows"][(f"{PREFIX}dave", ASSIGNMENT)]
    assert dave["status"] == "no submission" and float(dave["score"]) == 0
    assert len(flow["rows"]) == 6, f"one row per roster student, nothing else: {sorted(flow['rows'])}"


@pytest.mark.slow
def test_submitting_twice_keeps_both_and_grades_the_latest(flow):
    bob = flow["students"]["bob"]
    submissions = inbound(flow, bob.student_id)
    assert len(submissions) == 2, "both of bob's submissions stay in the exchange"
    latest = max(p.joinpath("timestamp.txt").read_text() for p in submissions)
    collected = flow["grading"] / "submitted" / bob.student_id / ASSIGNMENT
    assert collected.joinpath("timestamp.txt").read_text() == latest, "collect takes the latest"
    assert full_marks(row(flow, bob)), "the latest (solved) submission is the one graded"


@pytest.mark.slow
def test_late_submission_is_collected_graded_and_flagged(flow):
    s = flow["students"]
    carol = row(flow, s["carol"])
    assert full_marks(carol) and carol["detail"].startswith("late: submitted"), carol
    for name in ("alice", "bob", "zoe", "ana"):
        assert "late" not in row(flow, s[name])["detail"], (name, row(flow, s[name]))


@pytest.mark.slow
def test_unreleased_assignment_cannot_be_fetched_or_submitted(flow):
    submit, fetch = flow["unreleased"]
    assert fetch.returncode != 0 and submit.returncode != 0
    assert "not found" in (submit.stdout + submit.stderr).lower(), submit.stdout + submit.stderr
    folder = flow["room"].exchange / "attention-course" / "inbound"
    assert not [p for p in folder.iterdir() if f"+{UNRELEASED}+" in p.name], "nothing reached the exchange"
    assert not any(a == UNRELEASED for _, a in flow["rows"]), "and no row was made for it"


@pytest.mark.slow
def test_hub_identities_with_long_spaced_non_ascii_ids(flow):
    for name in ("zoe", "ana"):
        who = flow["students"][name]
        assert len(inbound(flow, who.student_id)) == 1
        assert (flow["grading"] / "submitted" / who.student_id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    assert len(LONG_ID) > 100


@pytest.mark.slow
def test_each_student_fetches_their_own_latest_feedback(flow):
    for name, who in flow["students"].items():
        released = flow["grading"] / "feedback" / who.student_id / ASSIGNMENT / f"{ASSIGNMENT}.html"
        fetched = sorted((who.home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
        assert len(fetched) == 1, f"{name}: expected the feedback of one (the latest) submission: {fetched}"
        assert fetched[0].read_bytes() == released.read_bytes(), f"{name} got someone else's feedback"
        submitted = flow["grading"] / "submitted" / who.student_id / ASSIGNMENT / "timestamp.txt"
        assert fetched[0].parent.name == submitted.read_text().strip(), "feedback filed under its submission"
        assert fetched[0].stat().st_uid == pwd.getpwnam(who.os_user).pw_uid


@pytest.mark.slow
def test_released_feedback_is_readable_despite_the_instructors_umask(flow):
    folder = flow["room"].exchange / "attention-course" / "feedback"
    pages = list(folder.glob("*.html"))
    assert len(pages) == 5, pages
    assert all(p.stat().st_mode & stat.S_IROTH for p in pages)


@pytest.mark.slow
def test_students_cannot_list_others_work(flow):
    room, carol = flow["room"], flow["students"]["carol"]
    for place in ("inbound", "feedback"):
        listing = room.as_student(carol, "ls", str(room.exchange / "attention-course" / place), check=False)
        assert listing.returncode != 0, f"a student can list the exchange's {place}: {listing.stdout}"
    grading = room.as_student(carol, "ls", str(flow["grading"]), check=False)
    assert grading.returncode != 0, "a student can read the instructor's grading folder"


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def test_nbgrader_commands_use_the_course_exchange(tmp_path):
    """nbgrader, started anywhere in the environment, reads the course's exchange and course id."""
    from autograder.settings import COURSE_ID, EXCHANGE_ROOT

    completed = run_python("from nbgrader.apps.listapp import ListApp\n"
                           "app = ListApp()\napp.load_config_file()\n"
                           "print(app.config.Exchange.root, app.config.CourseDirectory.course_id)", tmp_path)
    assert completed.stdout.split() == [EXCHANGE_ROOT, COURSE_ID], completed.stdout + completed.stderr


def test_grading_does_not_probe_a_missing_exchange(tmp_path):
    """A release or a grading template is a throwaway course: no CRITICAL "Unwritable directory"."""
    completed = run_python("import logging\nlogging.basicConfig(level=logging.INFO)\n"
                           "from pathlib import Path\nfrom autograder.release import generate_release\n"
                           f"generate_release({ASSIGNMENT!r}, Path({str(tmp_path)!r}))", tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "Unwritable directory" not in completed.stderr, completed.stderr[-2000:]
    assert (tmp_path / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
