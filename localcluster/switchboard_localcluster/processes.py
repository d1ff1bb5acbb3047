"""Supervision of the local cluster's child processes: start, log, stop, never orphan.

Every child runs in its own process group (so a stop reaches whatever it spawned)
and gets SIGKILL from the kernel if the supervising process dies, so a crashed
test run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessError(RuntimeError):
    """A supervised process failed to start or exited unexpectedly."""


class Supervised:
    """One child process with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
        log.info("process started name=%s pid=%s log=%s", self.name, self._proc.pid, self.log_path)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The exit code once the process has ended (None while it runs or never ran)."""
        return None if self._proc is None else self._proc.poll()

    def freeze(self) -> None:
        """SIGSTOP the process group: it keeps its sockets but answers nothing (a black
        hole, unlike a refused connection)."""
        if self._proc is not None:
            _signal_group(self._proc.pid, signal.SIGSTOP)
            log.info("process frozen name=%s pid=%s", self.name, self._proc.pid)

    def thaw(self) -> None:
        """SIGCONT the process group after `freeze`."""
        if self._proc is not None:
            _signal_group(self._proc.pid, signal.SIGCONT)
            log.info("process thawed name=%s pid=%s", self.name, self._proc.pid)

    def check_running(self) -> None:
        """Raise with the tail of the log if the process has exited."""
        if self._proc is None:
            raise ProcessError(f"{self.name} was never started")
        code = self._proc.poll()
        if code is not None:
            raise ProcessError(f"{self.name} exited with code {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash, for tests of recovery)."""
        if self._proc is not None:
            _signal_group(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("process did not stop in time name=%s grace=%s", self.name, grace)
        # Whatever the leader did, its group may still hold children.
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        log.info("process stopped name=%s pid=%s code=%s", self.name, proc.pid, proc.returncode)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> None:
    """Poll ``predicate()`` until it is truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except ProcessError:
            raise
        except Exception as error:
            last_error = error
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
