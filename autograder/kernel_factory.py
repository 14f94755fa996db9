"""A kernel factory: one sandboxed process that imports the course's libraries once and forks a
fresh kernel for every submission, each kernel in Linux namespaces of its own.

    python -m autograder.sandbox --factory --workspace DIR --runtime DIR --memory-mb N --preload numpy,torch

(:mod:`autograder.sandbox` sets the limits, starts bubblewrap and runs ``python -m
autograder.kernel_factory --root DIR --preload ... [--isolate]`` in it.)

Importing PyTorch costs about 1.5 CPU-seconds, more than the rest of grading an ex03 submission; on
a machine whose cores are all busy grading, starting each kernel ahead of need hides none of it. The
factory pays it once: it runs inside bubblewrap exactly as a kernel would (read-only system, no
network, only ``DIR`` writable, the memory limit), imports the modules, and then serves requests,
one JSON object per line on its standard input, answered on its standard output::

    {"op": "start", "folder": PATH, "argv": [...kernel arguments...]}  ->  {"pid": PID} | {"error": TEXT}
    {"op": "poll", "pid": PID}                                         ->  {"status": null | CODE}
    {"op": "kill", "pid": PID}                                         ->  {}

``start`` forks. The child enters new user, mount, PID, network, IPC and UTS namespaces; in them the
kernel (process 1 of its PID namespace, so everything it starts dies with it) sees of ``DIR`` only
its own ``folder/work`` and ``folder/runtime``; it then drops every capability, becomes
non-dumpable (another kernel cannot read its memory or its ``/proc`` entries) and runs ipykernel,
its output going to ``folder/kernel.log``. ``PID`` (the child outside the new namespaces) dies with
the kernel and the kernel with it. A kernel is used for one submission, as one started by
:mod:`autograder.sandbox` would be; the notebook sees no difference except a faster ``import``.

Without bubblewrap (``--no-bwrap``) the kernels are plain forks with the same resource limits.

The grader's side: :class:`KernelFactory` (the handle on a factory process) and
:class:`ForkedKernelProvisioner`, through which jupyter_client's kernel manager starts, polls and
kills a forked kernel as it would a kernel process of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, ClassVar

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Unicode

from autograder.kernel import preload

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


def _call(name: str, *args) -> None:
    if getattr(_libc, name)(*args) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{name}{args!r}: {os.strerror(error)}")


def _encode(text: object) -> bytes | None:
    return None if text is None else str(text).encode()


def _mount(source: str | None, target: Path, fstype: str | None, flags: int, data: str | None = None) -> None:
    _call("mount", _encode(source), _encode(target), _encode(fstype), ctypes.c_ulong(flags), _encode(data))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Give up every capability, for good (bounding and ambient sets too)."""
    for capability in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    _call("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    empty = (_CapData * 2)()
    _call("capset", ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), empty)
    _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _enter_namespaces() -> None:
    """New user, mount, PID, network, IPC and UTS namespaces; this process keeps its user id."""
    uid, gid = os.getuid(), os.getgid()
    _call("unshare", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


def _hide_other_kernels(root: Path, folder: Path) -> None:
    """Cover ``root`` with an empty read-only file system that shows only ``folder``'s work and
    runtime folders (bound back in from the directories opened before they were covered)."""
    _mount(None, Path("/"), None, MS_REC | MS_PRIVATE)
    kept = {name: os.open(folder / name, os.O_PATH | os.O_DIRECTORY) for name in ("work", "runtime")}
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    for name, handle in kept.items():
        (folder / name).mkdir(parents=True)
        _mount(f"/proc/self/fd/{handle}", folder / name, None, MS_BIND | MS_REC)
        os.close(handle)
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _become_kernel(root: Path, folder: Path, argv: list[str], isolate: bool) -> None:
    """In the forked child: isolate, then run ipykernel (never returns)."""
    log = os.open(folder / "kernel.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    if isolate:
        _enter_namespaces()
        kernel = os.fork()  # the first process of the new PID namespace
        if kernel:
            _, status = os.waitpid(kernel, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        _call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        _hide_other_kernels(root, folder)
        drop_capabilities()
        _call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)
    os.chdir(folder / "work")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()  # not the factory's random state, shared by every fork
    from ipykernel.kernelapp import launch_new_instance

    sys.argv = [sys.executable, *argv]
    launch_new_instance(argv)
    os._exit(0)


def _start(root: Path, folder: Path, argv: list[str], isolate: bool) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if isolate:
                _call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)  # its kernel cannot reach into it
            os.setsid()
            _become_kernel(root, folder, argv, isolate)
        except BaseException as error:  # noqa: BLE001 - report it in the kernel's log, then exit
            with contextlib.suppress(Exception):
                os.write(2, f"kernel factory: {type(error).__name__}: {error}\n".encode())
        finally:
            os._exit(code)
    return pid


def isolation_works(root: Path) -> bool:
    """Whether a forked child can isolate itself here (nested user namespaces may be forbidden, e.g.
    by AppArmor on Ubuntu 24.04); tried in a throwaway child on a throwaway folder."""
    folder = root / ".probe"
    for name in ("work", "runtime"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    pid = os.fork()
    if pid == 0:
        try:
            _enter_namespaces()
            _hide_other_kernels(root, folder)
            drop_capabilities()
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    for name in ("work", "runtime"):
        (folder / name).rmdir()
    folder.rmdir()
    return os.waitstatus_to_exitcode(status) == 0


def serve(root: Path, isolate: bool, requests: IO[str], answers: IO[str]) -> None:
    """Answer requests until ``requests`` closes; then kill every kernel still running.

    The first line written says whether the kernels will be isolated: ``{"ready": true, "isolated":
    BOOL}``; when isolation was asked for and does not work here, no kernel is started.
    """
    isolated = isolate and isolation_works(root)
    if isolated:
        _call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)  # no kernel may read or write the factory's memory
    answers.write(json.dumps({"ready": True, "isolated": isolated}) + "\n")
    answers.flush()
    if isolate and not isolated:
        return
    running: set[int] = set()
    exited: dict[int, int] = {}

    def reap(pid: int, flags: int = os.WNOHANG) -> None:
        done, status = os.waitpid(pid, flags)
        if done:
            running.discard(pid)
            exited[pid] = os.waitstatus_to_exitcode(status)

    try:
        for line in requests:
            request = json.loads(line)
            op, pid = request.get("op"), request.get("pid")
            reply: dict = {}
            if op == "start":
                try:
                    pid = _start(root, Path(request["folder"]), request["argv"], isolated)
                    running.add(pid)
                    reply = {"pid": pid}
                except OSError as error:
                    reply = {"error": str(error)}
            elif op == "poll":
                if pid in running:
                    reap(pid)
                reply = {"status": None if pid in running else exited.get(pid, -signal.SIGKILL)}
            elif op == "kill":
                if pid in running:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)  # the kernel's session: all it started
                    reap(pid, 0)
            else:
                reply = {"error": f"unknown request {op!r}"}
            answers.write(json.dumps(reply) + "\n")
            answers.flush()
    finally:
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


# --- the grader's side ----------------------------------------------------------------------------


class KernelFactory:
    """The grader's handle on one kernel factory process (thread-safe).

    ``root`` is the folder of the factory's kernels: each kernel's ``folder`` must be inside it.
    """

    running: ClassVar[dict[str, KernelFactory]] = {}  # by root, for ForkedKernelProvisioner

    def __init__(self, root: Path, memory_mb: int, use_bwrap: bool, preload: list[str], log: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.preload = list(preload)
        command = [sys.executable, "-m", "autograder.sandbox", "--factory", "--workspace", str(self.root),
                   "--runtime", str(self.root), "--memory-mb", str(memory_mb),
                   "--preload", ",".join(self.preload), *([] if use_bwrap else ["--no-bwrap"])]
        self.log = log
        with open(log, "ab") as stderr:  # in its root: bubblewrap starts the factory in the same folder
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=stderr, text=True, start_new_session=True, cwd=self.root)
        self._lock = threading.Lock()
        self._ready: dict | None = None
        KernelFactory.running[str(self.root)] = self

    def _read(self) -> dict:
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise OSError(f"the kernel factory exited (status {self._process.returncode}): "
                          + " / ".join(tail))
        return json.loads(line)

    def _ensure_ready(self) -> dict:
        if self._ready is None:
            self._ready = self._read()
        return self._ready

    def isolated(self) -> bool:
        """Whether its kernels run in namespaces of their own (waits until the factory is ready)."""
        with self._lock:
            return bool(self._ensure_ready().get("isolated"))

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._ensure_ready()
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            return self._read()

    def start(self, folder: Path, argv: list[str]) -> int:
        """Fork a kernel whose files are in ``folder`` (``work/``, ``runtime/``); return its id."""
        reply = self.ask({"op": "start", "folder": str(folder.resolve()), "argv": argv})
        if "error" in reply:
            raise OSError(f"the kernel factory could not start a kernel: {reply['error']}")
        return reply["pid"]

    def alive(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        """Stop the factory; kernels it started die with it."""
        KernelFactory.running.pop(str(self.root), None)
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


class ForkedKernel:
    """A kernel started by a :class:`KernelFactory`, with the part of ``subprocess.Popen``'s interface
    that jupyter_client's provisioner uses."""

    stdin = stdout = stderr = None

    def __init__(self, factory: KernelFactory, pid: int) -> None:
        self.factory = factory
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self.factory.ask({"op": "poll", "pid": self.pid})["status"]
            except OSError:  # the factory died, and its kernels with it
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        while self.poll() is None:
            threading.Event().wait(0.05)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(OSError):
                self.factory.ask({"op": "kill", "pid": self.pid})
            self.poll()

    def send_signal(self, signum: int) -> None:
        """Only stopping is supported: interrupts go as messages on the control channel."""
        if signum in (signal.SIGKILL, signal.SIGTERM):
            self.kill()

    terminate = kill


class ForkedKernelProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, launching the kernel through a :class:`KernelFactory`.

    Named ``autograder-forked`` (an entry point in ``pyproject.toml``); the kernel spec's
    ``kernel_provisioner.config`` gives the factory's ``root`` and the kernel's ``folder``.
    """

    root = Unicode(help="the root folder of a KernelFactory of this process").tag(config=True)
    folder = Unicode(help="the kernel's folder, inside the factory's root").tag(config=True)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        factory = KernelFactory.running[self.root]
        self.process = ForkedKernel(factory, factory.start(Path(self.folder), cmd))
        self.pid, self.pgid = self.process.pid, None
        self.cwd = kwargs.get("cwd", self.folder)
        return self.connection_info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--preload", default="")
    parser.add_argument("--isolate", action="store_true", help="a namespace of its own for each kernel")
    args = parser.parse_args(argv)
    # Answers go to the original standard output; anything printed by the libraries goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    preload([m for m in args.preload.split(",") if m])
    import ipykernel.kernelapp  # noqa: F401 - imported once here, not in every kernel

    serve(args.root.resolve(), args.isolate, sys.stdin, answers)


if __name__ == "__main__":
    main()
