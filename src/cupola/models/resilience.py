"""Resilience as a wrapper: timeouts, retries, fallbacks and a circuit breaker per deployment.

:class:`ResilientModel` serves one deployment. Each attempt must produce its first event within
the deployment's ``timeout``. A failed attempt (:class:`ProviderError`) is retried with
exponential backoff and jitter (``retry_backoff`` doubled per retry, times a random factor in
[0.5, 1]), or after exactly the ``Retry-After`` the upstream asked for; no wait is longer than
``max_retry_wait``, and a ``Retry-After`` beyond it goes straight to the next fallback. When a
deployment is out of attempts the ``fallbacks`` are tried in order, each with its own
parameters (its compat wrapper, retries, timeout and circuit breaker), never its own fallbacks.

Rules:

* A deployment is sent a request at most ``1 + retries`` times per call.
* Retrying or falling back is only possible before the first event (text, tool call or
  finish) has been passed on to the caller: the caller may already have shown or streamed
  it, so a failure after that ends the call with a clear :class:`ProviderError` saying the
  reply broke off.
* Errors that are not the provider's (e.g. :class:`UserError` from a strict compat wrapper)
  pass straight through.
* 400, 413, 422 (the request itself is bad) end the call at once: another attempt or another
  deployment would get the same request. Other answers that are not
  :attr:`ProviderError.retryable` (401, 403, 404: a misconfigured deployment, wrong key, no
  access, no such model) are not retried but do go to the fallbacks. Everything retryable
  is retried (no answer, timeout, dropped or malformed reply, 408, 409, 429, 5xx).
* A deployment's circuit breaker counts consecutive failed attempts; when it opens, calls skip
  the deployment (to its fallbacks, or fail with "deployment X is unavailable") until
  ``reset_seconds`` have passed; then one call probes it, and its outcome closes or re-opens
  the circuit. Bad requests (400, 413, 422) do not count.

A model that runs on this machine (:class:`LocalModel`, e.g. the embedded llama.cpp model)
sets its own time limit per request from its measured speed and the prompt's size (never less
than ``timeout``), and a local attempt that still runs out of time is not retried: sending the
request again would start the work over on the same busy CPU. It goes to the fallbacks, if any.

The reply's :class:`CallReport` says which deployment served (``deployment``), how many
requests were sent in all (``attempts``) and which deployments failed first (``failed_over``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from cupola.exceptions import ProviderError
from cupola.models.base import Finish, Model, ModelEvent, ModelRequest

FINAL_STATUSES = frozenset({400, 413, 422})
"""The request itself is bad: not retried, not sent to fallbacks, not a circuit failure."""


class LocalModel(Protocol):
    """A model run on this machine, whose slowness is not failure (see the module doc).
    A model is one when it has this method (checked once per :class:`Target`)."""

    def time_limit(self, request: ModelRequest, configured: float | None) -> float | None:
        """Seconds ``request`` may take to its first event (at least ``configured``)."""
        ...


class _LocalTimeout(ProviderError):
    """A local model ran out of its time limit: not retried (it would start over on the
    same machine), but the fallbacks are tried."""

    @property
    def retryable(self) -> bool:
        return False


class CircuitBreaker:
    """Consecutive failures open the circuit for ``reset_seconds``; then one probe call."""

    def __init__(
        self,
        deployment: str,
        failures: int,
        reset_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deployment = deployment
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self._clock = clock
        self.failures = 0
        """Consecutive failures so far."""
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (the reset time has passed; one probe)."""
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.reset_seconds:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a request may be sent now; in half-open state, only the first caller's."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probing:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self) -> None:
        self.failures += 1
        if self._probing or self.failures >= self.threshold:
            self._opened_at = self._clock()
        self._probing = False

    def release(self) -> None:
        """The call ended with no verdict (cancelled, or a bad request): let another probe."""
        self._probing = False

    def error(self) -> ProviderError:
        return ProviderError(
            f"deployment {self.deployment!r} is unavailable "
            f"(circuit open after {self.failures} failures)",
            code="deployment_unavailable",
        )


@dataclass(slots=True)
class Target:
    """One deployment a :class:`ResilientModel` may send to, with its own parameters."""

    name: str
    model: Model
    """The deployment's model without resilience (its compat wrapper around the adapter)."""
    retries: int = 2
    backoff: float = 0.5
    max_retry_wait: float = 30.0
    timeout: float | None = None
    """Seconds to the first event of an attempt; None waits as long as the adapter does."""
    breaker: CircuitBreaker | None = None
    local: LocalModel | None = field(init=False, default=None)
    """``model`` when it runs on this machine and sets its own time limits."""

    def __post_init__(self) -> None:
        if callable(getattr(self.model, "time_limit", None)):
            self.local = cast(LocalModel, self.model)


class _BrokenOff(ProviderError):
    """An attempt failed after its first event was passed on: never retried."""


class _Tally:
    """What one call has done so far, across its deployments."""

    def __init__(self) -> None:
        self.attempts = 0
        self.failed_over: list[str] = []
        self.errors: list[tuple[str, ProviderError, int]] = []
        """Per deployment given up on: its last error and the requests it was sent."""


def _stop_here(error: ProviderError) -> bool:
    return error.upstream_status in FINAL_STATUSES


def _judge(breaker: CircuitBreaker | None, exc: BaseException) -> None:
    """Tell the breaker how an attempt ended: failed, or no verdict (cancelled, bad request,
    not the provider's fault)."""
    if breaker is None:
        return
    if isinstance(exc, ProviderError) and not _stop_here(exc):
        breaker.failed()
    else:
        breaker.release()


class ResilientModel(Model):
    """Serves a deployment with retries, its fallbacks and circuit breakers (see module doc)."""

    def __init__(
        self,
        name: str,
        primary: Target,
        fallbacks: Sequence[str] = (),
        *,
        resolve: Callable[[str], Target] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        owns_models: bool = True,
    ) -> None:
        """``resolve`` turns a fallback's name into its :class:`Target` when first needed;
        ``owns_models``: whether :meth:`aclose` closes the targets' models (the registry
        closes them itself)."""
        if fallbacks and resolve is None:
            raise ValueError("fallbacks need a resolve function")
        self.name = name
        self.primary = primary
        self.fallbacks = tuple(dict.fromkeys(f for f in fallbacks if f != primary.name))
        self._resolve = resolve
        self._resolved: dict[str, Target] = {}
        self._sleep = sleep
        self._jitter = jitter
        self._owns = owns_models

    def check(self, request: ModelRequest) -> None:
        self.primary.model.check(request)

    async def count_tokens(self, request: ModelRequest) -> int | None:
        try:
            return await self.primary.model.count_tokens(request)
        except ProviderError:  # counting is a nicety: the caller estimates instead
            return None

    def _targets(self) -> list[Callable[[], Target]]:
        def primary() -> Target:
            return self.primary

        def fallback(name: str) -> Callable[[], Target]:
            def get() -> Target:
                target = self._resolved.get(name)
                if target is None:
                    assert self._resolve is not None
                    target = self._resolved[name] = self._resolve(name)
                return target

            return get

        return [primary, *(fallback(name) for name in self.fallbacks)]

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        tally = _Tally()
        for get_target in self._targets():
            target = get_target()
            served = False
            async for event in self._serve(target, request, tally):
                served = True
                yield event
            if served:
                return
            tally.failed_over.append(target.name)
        raise self._exhausted(tally)

    async def _serve(
        self, target: Target, request: ModelRequest, tally: _Tally
    ) -> AsyncIterator[ModelEvent]:
        """Run the call on one deployment with its retries. Yields nothing when it gave up
        on the deployment (the reason is in ``tally.errors``); raises when the call must end."""
        sent = 0
        error: ProviderError | None = None
        breaker = target.breaker
        for retry in range(target.retries + 1):
            if breaker is not None and not breaker.allow():
                error = error or breaker.error()
                break
            sent += 1
            tally.attempts += 1
            try:
                async for event in self._attempt(target, request, tally):
                    yield event
            except BaseException as exc:
                _judge(breaker, exc)
                if not isinstance(exc, ProviderError) or isinstance(exc, _BrokenOff):
                    raise
                if _stop_here(exc):
                    raise
                error = exc
                wait = None if retry == target.retries else self._wait(target, retry, exc)
                if wait is None:
                    break
                await self._sleep(wait)
            else:
                if breaker is not None:
                    breaker.succeeded()
                return
        assert error is not None
        tally.errors.append((target.name, error, sent))

    def _wait(self, target: Target, retry: int, error: ProviderError) -> float | None:
        """Seconds before the next attempt, or None to move on to the next deployment."""
        if not error.retryable:
            return None
        after: float | None = error.retry_after
        if after is not None:
            return after if after <= target.max_retry_wait else None
        backoff = target.backoff * (2.0**retry) * (0.5 + self._jitter() / 2)
        return min(backoff, target.max_retry_wait)

    async def _attempt(
        self, target: Target, request: ModelRequest, tally: _Tally
    ) -> AsyncIterator[ModelEvent]:
        """One request to ``target``: raises ProviderError before the first event (may be
        retried), :class:`_BrokenOff` after it."""
        local = target.local
        limit = target.timeout if local is None else local.time_limit(request, target.timeout)
        events = aiter(target.model.stream(request))
        try:
            try:
                async with asyncio.timeout(limit):
                    first = await anext(events)
            except StopAsyncIteration:
                raise ProviderError(
                    f"deployment {target.name!r} ended its reply without finishing"
                ) from None
            except TimeoutError:
                within = f" within {limit:g}s" if limit is not None else ""
                error = ProviderError if local is None else _LocalTimeout
                raise error(f"deployment {target.name!r} sent nothing{within}") from None
            yield self._stamped(first, target, tally)
            try:
                async for event in events:
                    yield self._stamped(event, target, tally)
            except ProviderError as exc:
                raise _BrokenOff(
                    f"deployment {target.name!r} failed after its reply had started, so it "
                    f"was not retried: {exc.message}",
                    code=exc.code,
                    upstream_status=exc.upstream_status,
                ) from exc
        finally:
            await _close(events)

    def _stamped(self, event: ModelEvent, target: Target, tally: _Tally) -> ModelEvent:
        if not isinstance(event, Finish):
            return event
        inner = event.report
        report = replace(
            inner,
            deployment=inner.deployment or target.name,
            attempts=tally.attempts - 1 + inner.attempts,
            failed_over=(*tally.failed_over, *inner.failed_over),
        )
        return replace(event, report=report)

    def _exhausted(self, tally: _Tally) -> ProviderError:
        """The error of a call no deployment served."""
        name, last, sent = tally.errors[-1]
        if len(tally.errors) == 1:
            if sent <= 1:
                return last
            return ProviderError(
                f"{last.message} (after {sent} attempts)",
                code=last.code,
                upstream_status=last.upstream_status,
                retry_after=last.retry_after,
            )
        parts = "; ".join(
            f"{n!r}: {e.message}" + (f" (after {s} attempts)" if s > 1 else "")
            for n, e, s in tally.errors
        )
        return ProviderError(
            f"deployment {self.name!r} and its fallbacks failed ({tally.attempts} attempts "
            f"in all): {parts}",
            code=last.code,
            upstream_status=last.upstream_status,
        )

    async def aclose(self) -> None:
        if not self._owns:
            return
        await self.primary.model.aclose()
        for target in self._resolved.values():
            await target.model.aclose()


async def _close(events: AsyncIterator[ModelEvent]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
