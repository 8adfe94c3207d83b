"""The code interpreter's sandbox: a container directory, and Python run in it with limits.

A *container* is a working directory, ``<data_dir>/containers/<project>/<container_id>``, that
snippets read and write; its files persist between calls and are served by the containers
routes. :func:`run_python` runs one snippet in a fresh ``python -I -B`` process, inside a
bubblewrap sandbox (:mod:`cupola.tools.bubblewrap`: no view of the server's files,
environment, network or other containers; its whole PID namespace dies with the call). The
runner's first act (before any of the snippet's code) is to lower its own rlimits: CPU
seconds, address space, file size, open files, core dumps, and processes (enforced by the
kernel unless the server runs as root). The parent enforces the wall time by killing the
process group, caps the captured output, and reports a kill as data. Without a jail (only
when ``code_interpreter.unsafe_without_sandbox`` allows it) the same process runs unconfined.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from cupola.settings import CodeInterpreterSettings
from cupola.tools.bubblewrap import WORKDIR, Jail

CONTAINER_ID = re.compile(r"^cntr_[A-Za-z0-9]{1,64}$")
FILE_ID = re.compile(r"^cfile_[0-9a-f]{32}$")
MEMORY_EXIT = 213
"""The runner's exit status when the snippet ran out of memory (a MemoryError)."""
MAX_OPEN_FILES = 256
PROCESS_ALLOWANCE = 128
"""Tasks (processes and threads) a snippet may add to what its user already runs."""
_DRAIN_SECONDS = 1.0
"""How long to wait for the output pipe to close after the process group is killed."""

# The runner: lowers its own limits, then runs the snippet like a notebook cell. It is passed
# with ``-c``; the snippet arrives on stdin, which is then replaced by /dev/null.
_RUNNER = r"""
import os, resource, sys

def _limit(kind, soft, hard=None):
    hard = soft if hard is None else hard
    current = resource.getrlimit(kind)[1]
    if current != resource.RLIM_INFINITY and os.getuid() != 0:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))

def _tasks(uid):
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat("/proc/" + name).st_uid == uid:
                    with open("/proc/" + name + "/stat", "rb") as f:
                        count += int(f.read().rsplit(b")", 1)[1].split()[17])
            except (OSError, ValueError, IndexError):
                pass
    return count

def _main():
    cpu, memory, fsize, nofile, allowance, memory_exit = map(int, sys.argv[1:7])
    code = sys.stdin.buffer.read().decode("utf-8", "replace")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout.reconfigure(line_buffering=True)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_CPU, cpu, cpu + 1)
    _limit(resource.RLIMIT_FSIZE, fsize)
    _limit(resource.RLIMIT_NOFILE, nofile)
    uid = os.getuid()
    if uid != 0 and os.path.isdir("/proc"):
        _limit(resource.RLIMIT_NPROC, _tasks(uid) + allowance)
    if memory > 0:
        _limit(resource.RLIMIT_AS, memory)
    import _ast  # the C module: ast.py, linecache and traceback load only on an error
    sys.argv = [""]
    sys.path.insert(0, os.getcwd())
    try:
        tree = compile(code, "<cell>", "exec", _ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError) as exc:
        _report(exc, code, None)
        sys.exit(1)
    last = None
    if tree.body and isinstance(tree.body[-1], _ast.Expr) and not code.rstrip().endswith(";"):
        last = _ast.Expression(tree.body.pop().value)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), namespace)
            if value is not None:
                print(repr(value))
    except SystemExit:
        raise
    except BaseException as exc:
        status = memory_exit if isinstance(exc, MemoryError) else 1
        namespace.clear()  # frees what a memory hog holds, so the report can load
        try:
            sys.stdout.flush()
            _report(exc, code, exc.__traceback__.tb_next)
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(status)

def _report(exc, code, tb):
    try:
        import linecache, traceback
    except BaseException:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return
    linecache.cache["<cell>"] = (len(code), None, code.splitlines(True), "<cell>")
    if tb is None and isinstance(exc, SyntaxError):
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
    else:
        traceback.print_exception(type(exc), exc, tb)

_main()
"""


def _hash(text: str, size: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def container_id_for(key: str) -> str:
    """The container of a conversation (or of a response outside a conversation): stable."""
    return "cntr_" + _hash(key, 48)


def file_id_for(container_id: str, path: str) -> str:
    """A container file's id: stable for a path, and safe to put in a URL or a file name."""
    return "cfile_" + _hash(f"{container_id}\0{path}", 32)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one snippet may use."""

    cpu_seconds: int
    memory_mb: int
    wall_seconds: float
    max_output_bytes: int
    max_workdir_bytes: int

    @classmethod
    def from_settings(cls, s: CodeInterpreterSettings) -> Limits:
        return cls(
            cpu_seconds=s.cpu_seconds,
            memory_mb=s.memory_mb,
            wall_seconds=s.wall_seconds,
            max_output_bytes=s.max_output_bytes,
            max_workdir_bytes=s.max_workdir_bytes,
        )


@dataclass(frozen=True, slots=True)
class ContainerFile:
    """A regular file in a container's working directory."""

    id: str
    path: str
    """Relative to the working directory, with ``/`` separators."""
    bytes: int
    created_at: int
    """When the file was last written (Unix seconds)."""
    mtime_ns: int

    def to_json(self, container_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "container.file",
            "container_id": container_id,
            "created_at": self.created_at,
            "bytes": self.bytes,
            "path": self.path,
            "source": "assistant",
        }


class Container:
    """A container's working directory and its metadata (kept beside it, out of reach of
    the snippets that run inside)."""

    def __init__(self, root: Path, container_id: str):
        if not CONTAINER_ID.match(container_id):
            raise ValueError(f"invalid container id {container_id!r}")
        self.id = container_id
        self.root = root
        self.workdir = root / container_id
        self._meta_path = root / f"{container_id}.json"

    @staticmethod
    def root_for(data_dir: Path, project: str) -> Path:
        return data_dir / "containers" / project

    @classmethod
    def find(cls, data_dir: Path, project: str, container_id: str) -> Container | None:
        """The existing container ``container_id`` of ``project``, or None."""
        if not CONTAINER_ID.match(container_id):
            return None
        found = cls(cls.root_for(data_dir, project), container_id)
        return found if found.workdir.is_dir() and not found.workdir.is_symlink() else None

    @classmethod
    def ensure(cls, data_dir: Path, project: str, container_id: str, name: str) -> Container:
        """The container ``container_id``, created (with ``name``) if it does not exist."""
        found = cls(cls.root_for(data_dir, project), container_id)
        if not found.workdir.is_dir():
            found.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not found._meta_path.exists():
            meta = {"name": name, "created_at": int(time.time())}
            found._meta_path.write_bytes(orjson.dumps(meta))
        return found

    @classmethod
    def all(cls, data_dir: Path, project: str) -> list[Container]:
        root = cls.root_for(data_dir, project)
        if not root.is_dir():
            return []
        return [
            cls(root, entry.name)
            for entry in os.scandir(root)
            if CONTAINER_ID.match(entry.name) and entry.is_dir(follow_symlinks=False)
        ]

    def meta(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self._meta_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            data = {}
        created = data.get("created_at")
        if not isinstance(created, int):
            created = int(self.workdir.stat().st_mtime)
        name = data.get("name")
        return {"name": name if isinstance(name, str) else self.id, "created_at": created}

    def to_json(self) -> dict[str, Any]:
        meta = self.meta()
        return {
            "id": self.id,
            "object": "container",
            "created_at": meta["created_at"],
            "status": "running",
            "name": meta["name"],
            "last_active_at": int(self.workdir.stat().st_mtime),
        }

    def files(self) -> list[ContainerFile]:
        """Every regular file under the working directory; symlinks are neither listed nor
        followed."""
        found: list[ContainerFile] = []
        stack = [("", self.workdir)]
        while stack:
            prefix, directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                rel = prefix + entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append((rel + "/", Path(entry.path)))
                elif stat.S_ISREG(st.st_mode):
                    found.append(
                        ContainerFile(
                            id=file_id_for(self.id, rel),
                            path=rel,
                            bytes=st.st_size,
                            created_at=int(st.st_mtime),
                            mtime_ns=st.st_mtime_ns,
                        )
                    )
        found.sort(key=lambda f: (f.created_at, f.path))
        return found

    def file(self, file_id: str) -> ContainerFile | None:
        if not FILE_ID.match(file_id):
            return None
        return next((f for f in self.files() if f.id == file_id), None)

    def open_file(self, file: ContainerFile) -> int:
        """A read-only descriptor of ``file``, opened one path component at a time without
        following symlinks, so nothing outside the working directory can be reached."""
        parts = file.path.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise FileNotFoundError(file.path)
        nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.workdir, os.O_RDONLY | os.O_DIRECTORY | nofollow)
        try:
            for part in parts[:-1]:
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            leaf = os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | nofollow, dir_fd=fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(leaf).st_mode):
            os.close(leaf)
            raise FileNotFoundError(file.path)
        return leaf

    def delete_file(self, file: ContainerFile) -> None:
        parent = self.workdir
        for part in file.path.split("/")[:-1]:
            parent = parent / part
            if parent.is_symlink():
                raise FileNotFoundError(file.path)
        (parent / file.path.rsplit("/", 1)[-1]).unlink()

    def delete(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._meta_path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a snippet ended. ``status`` is ``failed`` when a limit or a signal stopped it or
    the working directory outgrew its cap; an exception in the snippet is ``completed`` with
    its traceback in the logs, as in a notebook."""

    status: Literal["completed", "failed"]
    logs: str
    """stdout and stderr interleaved, truncated to the cap, then any notes (truncation, the
    exit code, why it was stopped)."""
    reason: str | None
    """Why it failed, e.g. ``killed: CPU time limit of 10 s``."""
    exit_code: int | None
    """The process's exit status; negative for a signal, as asyncio reports it."""
    output_bytes: int
    """How much the snippet printed, including what was cut."""
    seconds: float
    changed: list[ContainerFile]
    """Files this run created or modified."""


class _Output(asyncio.Protocol):
    """Collects the snippet's output up to a cap (counting the rest) and tells when its pipe
    closes: a child the snippet left behind can hold the pipe open after the snippet itself
    is gone."""

    def __init__(self, cap: int):
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.total = 0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - self.kept
        if room > 0:
            self.chunks.append(bytes(data[:room]))
            self.kept += min(room, len(data))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def text(self) -> str:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return decoder.decode(b"".join(self.chunks), final=self.total <= self.cap)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _verdict(code: int | None, limits: Limits, wall_expired: bool) -> str | None:
    """Why the snippet failed, or None when it exited on its own."""
    if wall_expired:
        return f"killed: wall time limit of {limits.wall_seconds:g} s"
    if code == MEMORY_EXIT:
        return f"killed: memory limit of {limits.memory_mb} MB"
    if code is None or code >= 0:
        return None
    number = -code
    if number == signal.SIGXCPU:
        return f"killed: CPU time limit of {limits.cpu_seconds} s"
    if number == signal.SIGKILL:
        return (
            f"killed by SIGKILL (the CPU time limit of {limits.cpu_seconds} s, "
            "or the system ran out of memory)"
        )
    if number == signal.SIGXFSZ:
        return f"killed: file size limit of {limits.max_workdir_bytes} bytes"
    return f"crashed: killed by {_signal_name(number)}"


def _jailed_status(code: int | None) -> int | None:
    """bwrap exits with 128+N when the snippet was killed by signal N: give it as asyncio
    reports a signal (-N). A snippet's own ``sys.exit(128+N)`` reads the same."""
    if code is None or code <= 128 or code == MEMORY_EXIT:
        return code
    try:
        return -signal.Signals(code - 128).value
    except ValueError:
        return code


def _environment(home: str) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


def _snapshot(container: Container) -> dict[str, tuple[int, int]]:
    return {f.path: (f.mtime_ns, f.bytes) for f in container.files()}


async def _execute(
    code: str, workdir: Path, limits: Limits, file_budget: int, jail: Jail | None
) -> tuple[_Output, int | None, bool]:
    """Run the runner (in ``jail`` unless None); return its output, exit status and whether
    the wall time ran out. Whatever happens (including cancellation), the process group is
    killed at the end; in a jail that kills the whole PID namespace."""
    args = [
        str(limits.cpu_seconds),
        str(limits.memory_mb * 1024 * 1024),
        str(file_budget),
        str(MAX_OPEN_FILES),
        str(PROCESS_ALLOWANCE),
        str(MEMORY_EXIT),
    ]
    argv = [sys.executable, "-I", "-B", "-c", _RUNNER, *args]
    if jail is None:
        env: dict[str, str] | None = _environment(str(workdir))
    else:
        argv, env = jail.command(workdir, argv, _environment(WORKDIR)), {}
    proc = _spawn(argv, workdir, env)
    assert proc.stdin is not None and proc.stdout is not None
    loop = asyncio.get_running_loop()
    output = _Output(limits.max_output_bytes)
    reader: asyncio.BaseTransport | None = None
    try:
        writer, _ = await loop.connect_write_pipe(asyncio.Protocol, proc.stdin)
        writer.write(code.encode("utf-8", "surrogatepass"))
        writer.close()
        reader, _ = await loop.connect_read_pipe(lambda: output, proc.stdout)
        exited = asyncio.ensure_future(_exit(proc))
        done, _ = await asyncio.wait({exited}, timeout=limits.wall_seconds)
        wall_expired = not done
        # Kill what is left of the group: the runaway itself, or children it left behind.
        _kill_group(proc.pid)
        await exited
        await asyncio.wait({output.closed}, timeout=_DRAIN_SECONDS)
        return output, proc.returncode, wall_expired
    finally:
        _kill_group(proc.pid)
        if reader is not None:
            reader.close()
        else:
            proc.stdout.close()
        if proc.returncode is None:
            await asyncio.shield(asyncio.to_thread(proc.wait))


def _spawn(argv: list[str], cwd: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session. ``subprocess.Popen`` spawns with vfork, which takes
    about a millisecond whatever the server's size; uvloop's ``subprocess_exec`` forks, which
    copies the server's page tables (about 80 ms for a 400 MB process, on every call)."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )


async def _exit(proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``proc`` exits, then reap it: on Linux the loop watches a pidfd; elsewhere
    a thread waits."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        await asyncio.to_thread(proc.wait)
        return
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await ready
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    proc.wait()  # it has exited: this only reaps it


async def run_python(
    code: str, container: Container, limits: Limits, jail: Jail | None
) -> RunResult:
    """Run ``code`` in a fresh Python process inside ``container``, sandboxed in ``jail``
    (None runs it unsandboxed); never raises for anything the snippet does. Cancelling the
    caller kills the process group."""
    started = time.perf_counter()
    before = await asyncio.to_thread(_snapshot, container)
    used = sum(size for _mtime, size in before.values())
    file_budget = max(limits.max_workdir_bytes - used, 0)
    capture, code_, wall_expired = await _execute(
        code, container.workdir, limits, file_budget, jail
    )
    if jail is not None:
        code_ = _jailed_status(code_)
    reason = _verdict(code_, limits, wall_expired)
    after = await asyncio.to_thread(container.files)
    changed = [f for f in after if before.get(f.path) != (f.mtime_ns, f.bytes)]
    usage = sum(f.bytes for f in after)
    notes: list[str] = []
    if capture.total > capture.cap:
        notes.append(
            f"[output truncated: {capture.total} bytes printed, the first {capture.cap} shown]"
        )
    if reason is None and code_ not in (None, 0, 1):
        notes.append(f"[exited with status {code_}]")
    if reason is None and usage > limits.max_workdir_bytes:
        reason = (
            f"the working directory holds {usage} bytes, over its limit of "
            f"{limits.max_workdir_bytes}; delete files to free space"
        )
    if reason is not None:
        notes.append(reason)
    logs = capture.text()
    if notes:
        logs = logs + ("" if not logs or logs.endswith("\n") else "\n") + "\n".join(notes)
    return RunResult(
        status="failed" if reason is not None else "completed",
        logs=logs,
        reason=reason,
        exit_code=code_,
        output_bytes=capture.total,
        seconds=time.perf_counter() - started,
        changed=changed,
    )
