"""The sandbox: snippets run in a fresh, limited process in a bubblewrap jail; runaways are
killed and reported."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from cupola.tools.bubblewrap import WORKDIR, Jail, probe
from cupola.tools.sandbox import (
    FILE_ID,
    Container,
    Limits,
    RunResult,
    container_id_for,
    file_id_for,
    run_python,
)

LIMITS = Limits(
    cpu_seconds=1,
    memory_mb=256,
    wall_seconds=3.0,
    max_output_bytes=4096,
    max_workdir_bytes=1024 * 1024,
)


@pytest.fixture
def box(tmp_path: Path) -> Container:
    return Container.ensure(tmp_path, "default", container_id_for("conv_test"), "conv_test")


def jail_for(data_dir: Path) -> Jail:
    """The jail the code interpreter uses; bubblewrap is installed by ``make`` (apt)."""
    jail = Jail.build("bwrap", [data_dir])
    assert jail is not None, "bubblewrap is not installed: apt-get install bubblewrap"
    assert probe(jail) is None, probe(jail)
    return jail


async def run(code: str, box: Container, limits: Limits = LIMITS) -> RunResult:
    return await run_python(code, box, limits, jail_for(box.root))


def running_with(marker: str) -> list[int]:
    """Host pids of live processes whose command line holds ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and alive(int(name)):
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


async def wait_none_with(marker: str) -> None:
    deadline = time.monotonic() + 3
    while running_with(marker):
        assert time.monotonic() < deadline, f"still running: {running_with(marker)}"
        await asyncio.sleep(0.02)


async def test_final_expression_is_printed(box: Container) -> None:
    result = await run("sum(range(10))", box)
    assert (result.status, result.logs, result.exit_code) == ("completed", "45\n", 0)
    assert (await run("x = 3\nx * 2;", box)).logs == ""  # a trailing ';' hides the value
    assert (await run("None", box)).logs == ""


async def test_print_output_is_captured_in_order(box: Container) -> None:
    code = "import sys\nprint('one')\nprint('two', file=sys.stderr)\nprint('three')\n'done'"
    result = await run(code, box)
    assert result.logs == "one\ntwo\nthree\n'done'\n"


async def test_exception_gives_a_traceback_of_the_cell(box: Container) -> None:
    result = await run("x = 1\n1 / 0", box)
    assert result.status == "completed" and result.exit_code == 1
    assert 'File "<cell>", line 2' in result.logs and "1 / 0" in result.logs
    assert result.logs.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "<string>" not in result.logs  # the runner's own frame is hidden
    syntax = await run("def f(:", box)
    assert "SyntaxError" in syntax.logs and syntax.status == "completed"


# The CPU tests leave the wall limit loose, so that a busy machine cannot turn a CPU kill into
# a wall-time kill.
CPU_LIMITS = Limits(1, 256, 10.0, 4096, 1024 * 1024)


async def test_infinite_loop_is_stopped_by_the_cpu_limit(box: Container) -> None:
    started = time.monotonic()
    result = await run("while True:\n    pass", box, CPU_LIMITS)
    assert time.monotonic() - started < CPU_LIMITS.wall_seconds
    assert result.status == "failed"
    assert result.reason == "killed: CPU time limit of 1 s"
    assert result.logs.endswith("killed: CPU time limit of 1 s")


async def test_cpu_limit_holds_when_sigxcpu_is_ignored(box: Container) -> None:
    code = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass"
    started = time.monotonic()
    result = await run(code, box, CPU_LIMITS)
    assert time.monotonic() - started < CPU_LIMITS.wall_seconds
    assert result.status == "failed" and result.exit_code == -signal.SIGKILL
    assert result.reason is not None and "CPU time limit of 1 s" in result.reason


async def test_sleeping_snippet_is_stopped_by_the_wall_limit(box: Container) -> None:
    limits = Limits(1, 256, 1.0, 4096, 1024 * 1024)
    started = time.monotonic()
    result = await run("print('before', flush=True)\nimport time\ntime.sleep(60)", box, limits)
    assert time.monotonic() - started < 2.0
    assert result.status == "failed" and result.exit_code == -signal.SIGKILL
    assert result.logs == "before\nkilled: wall time limit of 1 s"


@pytest.mark.parametrize(
    "code",
    [
        "b = bytearray(2_000_000_000)",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(10_000_000))",
    ],
    ids=["one-allocation", "growing-list"],
)
async def test_memory_hog_is_stopped(box: Container, code: str) -> None:
    result = await run(code, box)
    assert result.status == "failed"
    assert result.reason == "killed: memory limit of 256 MB"
    assert "MemoryError" in result.logs


async def test_crashes_are_reported(box: Container) -> None:
    aborted = await run("import os\nos.abort()", box)
    assert aborted.status == "failed" and aborted.exit_code == -signal.SIGABRT
    assert aborted.logs == "crashed: killed by SIGABRT"
    segv = await run("import ctypes\nctypes.string_at(0)", box)
    assert segv.status == "failed" and "SIGSEGV" in segv.logs
    exited = await run("print('bye')\nraise SystemExit(3)", box)
    assert exited.status == "completed" and exited.exit_code == 3
    assert exited.logs == "bye\n[exited with status 3]"


async def test_output_is_capped(box: Container) -> None:
    result = await run("for i in range(100_000):\n    print('line', i)", box)
    assert result.status == "completed"
    assert result.output_bytes > LIMITS.max_output_bytes
    body, note = result.logs.rsplit("\n", 1)
    assert len(body.encode()) <= LIMITS.max_output_bytes
    assert note == (
        f"[output truncated: {result.output_bytes} bytes printed, the first "
        f"{LIMITS.max_output_bytes} shown]"
    )


async def test_truncation_never_splits_a_character(box: Container) -> None:
    limits = Limits(1, 256, 3.0, 1001, 1024 * 1024)
    result = await run("print('é' * 1000)", box, limits)
    assert "\ufffd" not in result.logs and result.logs.startswith("é" * 500)


async def test_files_persist_but_variables_do_not(box: Container) -> None:
    first = await run("x = 41\nopen('data.txt', 'w').write('hello')", box)
    assert [f.path for f in first.changed] == ["data.txt"]
    second = await run("print(open('data.txt').read())\nprint('x' in globals())", box)
    assert second.logs == "hello\nFalse\n" and second.changed == []
    assert (box.workdir / "data.txt").read_text() == "hello"


async def test_environment_is_minimal_and_home_is_the_workdir(box: Container) -> None:
    code = "import os\nprint(sorted(os.environ))\nprint(os.getcwd() == os.environ['HOME'])"
    result = await run(code, box)
    names, same = result.logs.splitlines()
    assert "PATH" in names and "HOME" in names and "CUPOLA" not in names
    assert same == "True"
    cwd = await run("import os\nos.getcwd()", box)
    assert cwd.logs.strip() == repr(WORKDIR)


async def test_without_a_jail_the_snippet_runs_in_the_real_workdir(box: Container) -> None:
    """``unsafe_without_sandbox``: the same runner, unconfined (the code before the sandbox)."""
    result = await run_python("import os\nos.getcwd()", box, LIMITS, None)
    assert result.status == "completed" and result.logs.strip() == repr(str(box.workdir))


async def test_a_module_in_the_workdir_can_be_imported(box: Container) -> None:
    (box.workdir / "helper.py").write_text("VALUE = 7\n")
    assert (await run("import helper\nhelper.VALUE", box)).logs == "7\n"
    assert not (box.workdir / "__pycache__").exists()


async def test_workdir_cap(box: Container) -> None:
    big = await run("open('big.bin', 'wb').write(b'x' * 2_000_000)", box)
    assert big.status == "completed" and "File too large" in big.logs
    assert (box.workdir / "big.bin").stat().st_size <= 1024 * 1024
    (box.workdir / "big.bin").unlink()
    many = "for i in range(3):\n    open(f'part{i}.bin', 'wb').write(b'x' * 600_000)"
    over = await run(many, box)
    assert over.status == "failed" and over.reason is not None
    assert "over its limit of 1048576" in over.reason
    full = await run("with open('more.txt', 'w') as f:\n    f.write('y')", box)
    assert "File too large" in full.logs  # nothing more can be written ...
    freed = await run("import os\nfor n in os.listdir():\n    os.remove(n)\n'ok'", box)
    assert freed.status == "completed" and freed.logs == "'ok'\n"  # ... until files go


@pytest.mark.parametrize("escape", ["child", "setsid", "double-fork"])
async def test_leftover_children_are_killed(box: Container, escape: str) -> None:
    """Whatever the snippet starts dies with the call, even what left its process group
    (seen from the host: no process with the child's command line is left)."""
    marker = f"{3000 + os.getpid() % 1000}.{time.time_ns() % 10**9}"
    start = {
        "child": f"subprocess.Popen(['sleep', '{marker}'])",
        "setsid": f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)",
        "double-fork": (
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            f"        os.execvp('sleep', ['sleep', '{marker}'])\n"
            "    os._exit(0)\n"
            "os.wait()"
        ),
    }[escape]
    code = f"import os, subprocess, time\n{start}\ntime.sleep(0.3)\nprint('started')"
    result = await run(code, box)
    assert result.status == "completed" and result.logs == "started\n"
    await wait_none_with(marker)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a killed process waiting to be reaped by init does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


async def test_cancelling_the_call_kills_the_snippet(box: Container) -> None:
    marker = f"{2000 + os.getpid() % 1000}.{time.time_ns() % 10**9}"
    code = (
        f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
        "open('started', 'w').write('1')\nwhile True: pass"
    )
    task = asyncio.create_task(run(code, box, Limits(30, 256, 30.0, 4096, 1024 * 1024)))
    for _ in range(1000):
        if (box.workdir / "started").exists() and running_with(marker):
            break
        await asyncio.sleep(0.01)
    assert running_with(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_none_with(marker)


async def test_event_loop_stays_responsive_during_a_runaway(box: Container) -> None:
    task = asyncio.create_task(run("while True: pass", box, CPU_LIMITS))
    gaps: list[float] = []
    last = time.monotonic()
    while not task.done():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    assert (await task).status == "failed"
    assert len(gaps) > 20 and max(gaps) < 0.5


async def test_snippets_run_concurrently(box: Container) -> None:
    started = time.monotonic()
    results = await asyncio.gather(*(run("import time\ntime.sleep(0.5)", box) for _ in range(4)))
    assert all(r.status == "completed" for r in results)
    assert time.monotonic() - started < 1.8


def test_ids_are_stable_and_path_safe(tmp_path: Path) -> None:
    cid = container_id_for("conv_abc")
    assert cid == container_id_for("conv_abc") != container_id_for("conv_abd")
    assert cid.startswith("cntr_") and cid[5:].isalnum()
    fid = file_id_for(cid, "../../etc/passwd")
    assert FILE_ID.match(fid) and fid == file_id_for(cid, "../../etc/passwd")
    assert file_id_for(cid, "a.txt") != file_id_for(container_id_for("x"), "a.txt")
    with pytest.raises(ValueError):
        Container(tmp_path, "../escape")
    assert Container.find(tmp_path, "default", "cntr_../../x") is None


def test_symlinks_are_neither_listed_nor_followed(box: Container, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    (box.workdir / "link.txt").symlink_to(secret)
    (box.workdir / "sub").mkdir()
    (box.workdir / "sub" / "ok.txt").write_text("fine")
    (box.workdir / "linkdir").symlink_to(tmp_path)
    assert [f.path for f in box.files()] == ["sub/ok.txt"]
    ok = box.files()[0]
    fd = box.open_file(ok)
    try:
        assert os.read(fd, 100) == b"fine"
    finally:
        os.close(fd)
    forged = type(ok)(id=ok.id, path="link.txt", bytes=1, created_at=0, mtime_ns=0)
    with pytest.raises(OSError):
        box.open_file(forged)
    via_dir = type(ok)(id=ok.id, path="linkdir/secret.txt", bytes=1, created_at=0, mtime_ns=0)
    with pytest.raises(OSError):
        box.open_file(via_dir)


def test_the_jail_binds_only_the_system_python_and_the_container(tmp_path: Path) -> None:
    """The command line itself: read-only system, read-write container, nothing of the data
    directory, which is covered by an empty tmpfs should a bind expose it."""
    inside_python = Path(sys.prefix) / "cupola-data"
    jail = Jail.build("bwrap", [tmp_path, inside_python])
    assert jail is not None and jail.hidden == (str(inside_python.resolve()),)
    argv = jail.command(tmp_path / "work", ["python"], {"HOME": WORKDIR})
    binds = [argv[i + 1 : i + 3] for i, a in enumerate(argv) if a == "--bind"]
    assert binds == [[str(tmp_path / "work"), WORKDIR]]  # the one writable place
    read_only = [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"]
    assert not any(str(tmp_path).startswith(p) or p.startswith(str(tmp_path)) for p in read_only)
    for flag in ("--unshare-user", "--unshare-all", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert "--share-net" not in argv and argv[argv.index("--clearenv") - 1] == "ALL"
    hidden = str(inside_python.resolve())
    assert argv[argv.index(hidden) - 1] == "--tmpfs"


def test_an_interpreter_installed_under_tmp_runs_in_the_jail(tmp_path: Path) -> None:
    """A checkout's .venv under /tmp (as CI's clone may be) stays visible inside the jail,
    whose own private /tmp would otherwise hide it."""
    import subprocess
    import venv

    env_dir = tmp_path / "venv"
    assert str(env_dir).startswith("/tmp/")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    roots = tuple(dict.fromkeys([str(env_dir), sys.base_prefix, os.path.realpath(sys.base_prefix)]))
    jail = Jail.build("bwrap", [])
    assert jail is not None
    jail = Jail(jail.bwrap, roots, ())
    argv = jail.command(tmp_path / "work", [python, "-I", "-c", "print(6 * 7)"], {})
    (tmp_path / "work").mkdir()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
