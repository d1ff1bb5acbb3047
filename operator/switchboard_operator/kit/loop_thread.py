"""A thread with an event loop and a Kubernetes API client of its own: for work that must
not wait behind the operator's main event loop (the leader's Lease renewals, as client-go
runs leader election in a goroutine of its own)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from kubernetes_asyncio import client

T = TypeVar("T")

Main = Callable[[client.ApiClient], Coroutine[Any, Any, T]]


class LoopThread(Generic[T]):
    """Runs one coroutine, `main(api)`, on a private event loop in a daemon thread, with a
    private API client built from `configuration` (clients are bound to their loop)."""

    def __init__(self, configuration: client.Configuration, name: str, main: Main[T]) -> None:
        self.outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
        """`main`'s result or exception; cancelled when `stop` cancelled it."""
        self._configuration = configuration
        self._main = main
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[T] | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> LoopThread[T]:
        self._thread.start()
        return self

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run `callback` on the thread's loop (no-op once it has ended)."""
        with self._lock:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        """Cancel `main` (it may still finish what it was doing first)."""
        with self._lock:
            self._stopping = True
            if self._task is not None and self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._task.cancel)

    async def stopped(self) -> None:
        """Stop `main` and wait until it has ended, whatever its outcome."""
        self.stop()
        ended = asyncio.wrap_future(self.outcome)
        await asyncio.wait({ended})
        if not ended.cancelled():
            ended.exception()  # retrieved: whoever cares holds `outcome`

    def _run(self) -> None:
        try:
            result = asyncio.run(self._with_client())
        except asyncio.CancelledError:
            self.outcome.cancel()
        except BaseException as error:  # handed over to whoever awaits the outcome
            self.outcome.set_exception(error)
        else:
            self.outcome.set_result(result)

    async def _with_client(self) -> T:
        async with client.ApiClient(self._configuration) as api:
            with self._lock:
                self._loop = asyncio.get_running_loop()
                self._task = asyncio.current_task()  # type: ignore[assignment]
                stopping = self._stopping
            if stopping:
                raise asyncio.CancelledError
            try:
                return await self._main(api)
            finally:
                with self._lock:
                    self._task = None
