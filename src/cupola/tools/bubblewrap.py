"""Where a code-interpreter snippet runs: a bubblewrap (``bwrap``) sandbox.

A :class:`Jail` turns ``python -I -B -c <runner>`` into a ``bwrap`` command line that runs it
in fresh user, mount, PID, network, IPC, UTS and cgroup namespaces:

- the filesystem is an empty tmpfs holding read-only binds of the system (``/usr``, the
  ``/bin``, ``/lib*`` links, the few ``/etc`` files the dynamic loader and fonts need) and of
  the Python that runs the snippet (``sys.prefix``, ``sys.base_prefix``); a fresh ``/proc``
  for the new PID namespace, a minimal ``/dev``, a small ``/tmp``, and the container's own
  directory read-write at :data:`WORKDIR`. Nothing else of the host is there: not the data
  directory (database, secrets key, other containers), not ``/root``, ``/home``, ``/run``;
  and the data directory is covered by an empty tmpfs should it lie inside a bound path;
- no network at all: a new network namespace holds only its own loopback;
- the snippet is uid 1000 in its namespace, with no capabilities, and cannot make nested user
  namespaces (``--disable-userns``); it runs in a new session (no terminal injection);
- ``--die-with-parent``: killing ``bwrap`` kills the PID namespace's init, and the kernel then
  kills every process in it, ``setsid`` and double-forked ones included;
- the environment is cleared, then set to what the runner needs.

:func:`probe` runs a trivial snippet once, so a missing or unusable ``bwrap`` (no user
namespaces, a seccomp profile refusing ``unshare``) is known before a snippet is run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

WORKDIR = "/mnt/data"
"""The container directory as the snippet sees it (as in OpenAI's code interpreter)."""
SANDBOX_UID = 1000
"""The snippet's uid and gid inside its user namespace (it maps to the server's own)."""
TMP_BYTES = 16 * 1024 * 1024
"""The size of the snippet's private ``/tmp`` (memory-backed)."""
_ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/fonts",
    "/etc/mime.types",
)
"""The host's /etc files a snippet may see: none of them holds a secret."""
_TOP = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_PROBE_SECONDS = 15.0


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _python_roots() -> list[str]:
    """The directories the running interpreter and its packages live in."""
    roots: list[str] = []
    candidates = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
    ]
    for path in candidates:
        real = os.path.realpath(path)
        if real in ("/", "/usr") or not os.path.isdir(real):
            continue
        for spelled in {path, real}:
            if not _under(spelled, ["/usr", *roots]):
                roots.append(spelled)
    return roots


@dataclass(frozen=True, slots=True)
class Jail:
    """How to run a command in a bubblewrap sandbox whose only writable place is one
    container directory."""

    bwrap: str
    """The ``bwrap`` executable (an absolute path)."""
    python_roots: tuple[str, ...]
    hidden: tuple[str, ...]
    """Host directories covered by an empty tmpfs, should a bind expose them."""

    @classmethod
    def build(cls, bwrap: str, hidden: list[Path]) -> Jail | None:
        """A jail using ``bwrap`` (a name on PATH or a path), or None when it is not found.
        ``hidden`` are the server's own directories (its data directory), never shown."""
        found = shutil.which(bwrap)
        if found is None:
            return None
        roots = _python_roots()
        covered = [str(p.resolve()) for p in hidden if _under(str(p.resolve()), ["/usr", *roots])]
        return cls(os.path.abspath(found), tuple(roots), tuple(covered))

    def command(self, workdir: Path, argv: list[str], env: dict[str, str]) -> list[str]:
        """``argv`` run in the sandbox, with ``workdir`` at :data:`WORKDIR` as its cwd."""
        args = [
            self.bwrap,
            "--unshare-user",  # explicit: --unshare-all alone falls back silently without it
            "--unshare-all",
            "--disable-userns",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            "sandbox",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for top in _TOP:
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        for path in _ETC:
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        # the private /tmp first: an interpreter installed under /tmp (a checkout's .venv)
        # is then bound on top of it rather than hidden by it
        args += ["--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
        for root in self.python_roots:
            args += ["--ro-bind", root, root]
        for path in self.hidden:
            args += ["--tmpfs", path]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--bind", str(workdir), WORKDIR, "--chdir", WORKDIR]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, "--", *argv]


_WORKING: set[Jail] = set()
"""Jails that ran Python in this process; a failure is not remembered, so installing
bubblewrap (or fixing its setup) takes effect without a restart."""


def proven(jail: Jail) -> bool:
    """Whether ``jail`` already ran Python in this process (no need to probe it again)."""
    return jail in _WORKING


def probe(jail: Jail) -> str | None:
    """None when ``jail`` runs Python here, else why not (bwrap's own words). Runs a trivial
    snippet the first time (it blocks: call it from a thread), then answers from memory."""
    if jail in _WORKING:
        return None
    scratch = Path(tempfile.gettempdir())
    command = jail.command(scratch, [sys.executable, "-I", "-B", "-c", "pass"], {})
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=_PROBE_SECONDS, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{jail.bwrap} could not be run: {exc}"
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        return f"{jail.bwrap} cannot start a sandbox here: {said}"
    _WORKING.add(jail)
    return None
