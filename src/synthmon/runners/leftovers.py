"""What a run leaves behind when it ends: tasks it spawned and never awaited, httpx
clients it opened and never closed. Both outlive the run unseen (each leaked client
keeps its sockets open, each task its references) until the daemon runs out of memory
or file descriptors. `RunScope` finds them when the run ends, cancels or closes them,
and reports them (a `run_left_resources` warning naming the journey; the count rides
on the RunResult to `synthmon_journey_left_behind_total`).

How a resource is tied to its run: a context variable is set for the run's duration.
Tasks copy the context of the code that creates them, and the loop's task factory
(wrapped once, chaining any factory already set) records a new task on the scope found
there. `httpx.AsyncClient.__init__` is wrapped once the same way: a client built while
a scope is current belongs to that run. Our own `ctx.http` is closed by the runner
before the scope ends, so only the journey's own leftovers are reported.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

import httpx
import structlog

log = structlog.get_logger("synthmon.runner")

_SCOPE: contextvars.ContextVar[RunScope | None] = contextvars.ContextVar(
    "synthmon_run_scope", default=None
)
# Time given to cancelled tasks to unwind and to leftover clients to close.
SETTLE_SECONDS = 2.0


class RunScope:
    """`async with RunScope(journey, target, run_id) as scope:` around one run."""

    def __init__(self, journey: str, target: str, run_id: str) -> None:
        self.journey = journey
        self.target = target
        self.run_id = run_id
        self.tasks: list[asyncio.Task[Any]] = []
        self.clients: list[httpx.AsyncClient] = []
        # ("task", n), ("http_client", n) for what was left open; empty when nothing.
        self.left_behind: tuple[tuple[str, int], ...] = ()
        self._token: contextvars.Token[RunScope | None] | None = None

    async def __aenter__(self) -> RunScope:
        _install(asyncio.get_running_loop())
        self._token = _SCOPE.set(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _SCOPE.reset(self._token)
        tasks = [t for t in self.tasks if not t.done()]
        clients = [c for c in self.clients if not c.is_closed]
        self.tasks, self.clients = [], []
        if not tasks and not clients:
            return
        names = [_describe_task(t) for t in tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=SETTLE_SECONDS)
        for client in clients:
            try:
                async with asyncio.timeout(SETTLE_SECONDS):
                    await client.aclose()
            except Exception:  # noqa: BLE001,S110 - closing a leftover is best effort
                pass
        self.left_behind = tuple(
            (kind, n) for kind, n in (("task", len(tasks)), ("http_client", len(clients))) if n
        )
        log.warning(
            "run_left_resources",
            journey=self.journey,
            target=self.target,
            run_id=self.run_id,
            tasks=len(tasks),
            task_names=names[:10],
            http_clients=len(clients),
            hint="the journey ended with tasks still running or httpx clients still open; "
            "synthmon cancelled and closed them. Await every task you create and use "
            "'async with httpx.AsyncClient() as client:' (or ctx.http)",
        )


def _describe_task(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None)
    if code is not None:
        return f"{task.get_name()} ({code.co_qualname} at {code.co_filename}:{code.co_firstlineno})"
    return task.get_name()


def _install(loop: asyncio.AbstractEventLoop) -> None:
    """Wrap the loop's task factory and httpx's client constructor, once each."""
    _patch_httpx()
    if getattr(loop.get_task_factory(), "_synthmon", False):
        return
    previous = loop.get_task_factory()

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Future[Any]:
        task: asyncio.Future[Any]
        if previous is not None:
            task = previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        context = kwargs.get("context")
        scope = context.get(_SCOPE) if context is not None else _SCOPE.get()
        if scope is not None and isinstance(task, asyncio.Task):
            scope.tasks.append(task)
        return task

    factory._synthmon = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)  # type: ignore[arg-type]


def _patch_httpx() -> None:
    cls = httpx.AsyncClient
    if getattr(cls.__init__, "_synthmon", False):
        return
    original = cls.__init__

    def __init__(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        scope = _SCOPE.get()
        if scope is not None:
            scope.clients.append(self)

    __init__._synthmon = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[method-assign]
