"""Events, Prometheus metrics and OpenTelemetry spans for what the authenticator does.

    from mauth_client import observability
    unsubscribe = observability.subscribe(print)   # one event per attempt and key fetch
    observability.prometheus()                      # metrics in the default registry

Two kinds of event, both :class:`Event`:

- ``kind == "authentication"``: one per request an adapter checked (and per upstream
  ``LocalAuthenticator(...).is_authentic()``), ``outcome`` one of ``authentic``,
  ``inauthentic``, ``forbidden``, ``error``; ``app_uuid`` (the one the request claims
  when it is not authentic), ``protocol_version`` (``"v1"``, ``"v2"`` or None),
  ``reason`` (why it failed, "" otherwise) and ``duration`` in seconds.
- ``kind == "key_fetch"``: one per public key asked of the MAuth service, ``outcome``
  one of ``fetched``, ``not_found``, ``error``.

With no listener and no OpenTelemetry tracer provider, the hooks cost one tuple
truth test (listeners) and, when ``opentelemetry.trace`` has been imported, one
``get_tracer_provider()`` type check. A listener that raises is logged and ignored.
This module imports nothing of the project, so any layer may emit events.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

logger = logging.getLogger("mauth_client")

T = TypeVar("T")


class Event(NamedTuple):
    """One thing the authenticator did; see the module docstring for the fields."""

    kind: str
    outcome: str
    app_uuid: str | None = None
    protocol_version: str | None = None
    reason: str = ""
    duration: float = 0.0


_new_event = tuple.__new__  # skips the NamedTuple's Python-level __new__ on the hot path
Listener = Callable[[Event], object]

#: The subscribed listeners: a tuple replaced (never mutated) under a lock, so emitting
#: reads it without locking and the no-listener check is one truth test.
listeners: tuple[Listener, ...] = ()
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener(event)`` for every event from now on; returns the function that
    unsubscribes it (calling that twice is harmless)."""
    global listeners
    if not callable(listener):
        raise TypeError("an event listener must be callable")
    with _lock:
        listeners = (*listeners, listener)

    def unsubscribe() -> None:
        global listeners
        with _lock:
            kept = list(listeners)
            if listener in kept:
                kept.remove(listener)
            listeners = tuple(kept)

    return unsubscribe


def emit(event: Event) -> None:
    """Give ``event`` to every listener; one that raises is logged, never propagated."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            logger.exception(
                "MAuth: an event listener (%r) raised; the event was dropped", listener
            )


# --- OpenTelemetry ----------------------------------------------------------------------


_MISSING = object()
_provider_in_env: bool | None = None  # OTEL_PYTHON_TRACER_PROVIDER, read once
_cached_tracer: tuple[Any, Any] = (None, None)  # (provider, its tracer)


def tracer() -> Any | None:
    """The tracer for spans, or None when no OpenTelemetry tracer provider is configured.

    Nothing is imported here: if the application never imported ``opentelemetry.trace``
    (the SDK and every instrumentation do) no provider can be configured, so the check
    is one dictionary lookup. Otherwise, while the API's global provider is unset and
    ``OTEL_PYTHON_TRACER_PROVIDER`` names none, it is one attribute read; with a
    provider, ``get_tracer_provider()`` is compared with the API's placeholders
    (``ProxyTracerProvider``, ``NoOpTracerProvider``).
    """
    global _provider_in_env, _cached_tracer
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    if getattr(trace, "_TRACER_PROVIDER", _MISSING) is None:  # the API's "not set yet"
        if _provider_in_env is None:
            _provider_in_env = bool(os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"))
        if not _provider_in_env:
            return None
    provider = trace.get_tracer_provider()
    cached_provider, cached = _cached_tracer
    if provider is cached_provider:
        return cached
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        found = None
    else:
        found = provider.get_tracer("mauth_client")
    _cached_tracer = (provider, found)
    return found


def active() -> bool:
    """True when an authentication attempt has to be timed, reported or traced."""
    return bool(listeners) or tracer() is not None


_VERSION_LABELS = {1: "v1", 2: "v2"}


def version_label(protocol_version: int | None) -> str | None:
    """``"v1"``, ``"v2"`` or None, as events and span attributes carry it."""
    return _VERSION_LABELS.get(protocol_version) if protocol_version is not None else None


@contextmanager
def authentication_span(span_tracer: Any | None) -> Iterator[Any | None]:
    """A current span ``mauth.authenticate`` (so key fetches become its children)."""
    if span_tracer is None:
        yield None
        return
    with span_tracer.start_as_current_span("mauth.authenticate") as span:
        yield span


def finish_authentication(
    span: Any | None,
    start: float,
    outcome: str,
    app_uuid: str | None,
    protocol_version: str | None,
    reason: str,
) -> None:
    """Label the span and send the ``authentication`` event of one attempt."""
    if span is not None:
        span.set_attribute("mauth.outcome", outcome)
        if app_uuid is not None:
            span.set_attribute("mauth.app_uuid", app_uuid)
        if protocol_version is not None:
            span.set_attribute("mauth.protocol_version", protocol_version)
    if listeners:
        emit(
            _new_event(
                Event,
                (
                    "authentication",
                    outcome,
                    app_uuid,
                    protocol_version,
                    reason,
                    time.perf_counter() - start,
                ),
            )
        )


def emit_authentic(app_uuid: str, protocol_version: int, start: float) -> None:
    """The ``authentication`` event of an authentic attempt, with no span: the path
    every request with a listener (a metrics exporter) takes, so built inline."""
    event = _new_event(
        Event,
        (
            "authentication",
            "authentic",
            app_uuid,
            _VERSION_LABELS.get(protocol_version),
            "",
            time.perf_counter() - start,
        ),
    )
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            logger.exception(
                "MAuth: an event listener (%r) raised; the event was dropped", listener
            )


def observed_key_fetch(fetch: Callable[[Any, str], T]) -> Callable[[Any, str], T]:
    """Decorates a key source's ``_fetch(self, app_uuid)`` (None: the service does not
    know the app): a child span ``mauth.key_fetch`` and a ``key_fetch`` event each."""

    def wrapper(self: Any, app_uuid: str) -> T:
        if not listeners:
            span_tracer = tracer()
            if span_tracer is None:
                return fetch(self, app_uuid)
        else:
            span_tracer = tracer()
        start = time.perf_counter()
        outcome, reason = "error", ""
        span_context: Any = (
            span_tracer.start_as_current_span("mauth.key_fetch")
            if span_tracer is not None
            else _no_span()
        )
        with span_context as span:
            try:
                result = fetch(self, app_uuid)
            except Exception as exc:
                reason = str(exc)
                raise
            else:
                outcome = "fetched" if result is not None else "not_found"
                return result
            finally:
                _finish_key_fetch(span, start, app_uuid, outcome, reason)

    wrapper.__wrapped__ = fetch  # type: ignore[attr-defined]
    wrapper.__doc__ = fetch.__doc__
    return wrapper


def _finish_key_fetch(span: Any, start: float, app_uuid: str, outcome: str, reason: str) -> None:
    """The end of one key lookup: the span's attributes and the ``key_fetch`` event."""
    if span is not None:
        span.set_attribute("mauth.app_uuid", app_uuid)
        span.set_attribute("mauth.outcome", outcome)
    if listeners:
        emit(Event("key_fetch", outcome, app_uuid, None, reason, time.perf_counter() - start))


def observed_async_key_fetch(
    fetch: Callable[[Any, str, Any], Coroutine[Any, Any, None]],
) -> Callable[[Any, str, Any], Coroutine[Any, Any, None]]:
    """Decorates a key source's ``_fetch_async(self, app_uuid, flight)``, which settles
    the ``concurrent.futures.Future`` ``flight`` with the entry (None: unknown app) or
    an exception: the same ``key_fetch`` event and span as :func:`observed_key_fetch`."""

    async def wrapper(self: Any, app_uuid: str, flight: Any) -> None:
        span_tracer = tracer()
        if span_tracer is None and not listeners:
            await fetch(self, app_uuid, flight)
            return
        start = time.perf_counter()
        span_context: Any = (
            span_tracer.start_as_current_span("mauth.key_fetch")
            if span_tracer is not None
            else _no_span()
        )
        with span_context as span:
            try:
                await fetch(self, app_uuid, flight)
            finally:
                outcome, reason = "error", "the key fetch did not finish"
                if flight.done():
                    error = flight.exception()
                    if error is not None:
                        reason = str(error)
                    else:
                        outcome = "fetched" if flight.result() is not None else "not_found"
                        reason = ""
                _finish_key_fetch(span, start, app_uuid, outcome, reason)

    wrapper.__wrapped__ = fetch  # type: ignore[attr-defined]
    wrapper.__doc__ = fetch.__doc__
    return wrapper


@contextmanager
def _no_span() -> Iterator[None]:
    yield None


# --- Prometheus -------------------------------------------------------------------------

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_exporters: dict[int, Callable[[], None]] = {}
_exporters_lock = threading.Lock()


def prometheus(registry: Any | None = None) -> Callable[[], None]:
    """Maintain Prometheus metrics from the events (the ``prometheus`` extra):

    - ``mauth_authentications_total{outcome, version}`` (version ``v1``, ``v2`` or ``none``)
    - ``mauth_authentication_duration_seconds`` (histogram, every attempt)
    - ``mauth_key_fetches_total{outcome}``

    in ``registry`` (the default ``prometheus_client.REGISTRY`` if None). Returns the
    function that stops it and removes the metrics; calling ``prometheus`` again with
    the same registry returns the same one instead of registering twice.
    """
    try:
        import prometheus_client
    except ImportError as exc:
        from ._optional import missing_extra

        raise missing_extra(f"{__name__}.prometheus", "prometheus", exc) from exc
    target = prometheus_client.REGISTRY if registry is None else registry
    with _exporters_lock:
        existing = _exporters.get(id(target))
        if existing is not None:
            return existing
        stop = _install(prometheus_client, target)
        _exporters[id(target)] = stop
        return stop


class _Collector:
    """Tallies kept as plain numbers under one lock and turned into metric families
    only when Prometheus scrapes: a few hundred nanoseconds per event instead of a
    locked value per counter and histogram bucket."""

    def __init__(self, metrics: Any) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str, str], int] = {}
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._fetches: dict[str, int] = {}

    def record(self, event: Event) -> None:
        if event.kind == "authentication":
            labels = (event.outcome, event.protocol_version or "none")
            duration = event.duration
            slot = bisect_left(DURATION_BUCKETS, duration)  # the first bound >= duration
            with self._lock:
                self._attempts[labels] = self._attempts.get(labels, 0) + 1
                self._buckets[slot] += 1
                self._sum += duration
        elif event.kind == "key_fetch":
            with self._lock:
                self._fetches[event.outcome] = self._fetches.get(event.outcome, 0) + 1

    def describe(self) -> list[Any]:
        return self._families({}, [0] * len(self._buckets), 0.0, {})

    def collect(self) -> list[Any]:
        with self._lock:
            attempts, buckets = dict(self._attempts), list(self._buckets)
            total, fetches = self._sum, dict(self._fetches)
        return self._families(attempts, buckets, total, fetches)

    def _families(
        self,
        attempts: dict[tuple[str, str], int],
        buckets: list[int],
        total: float,
        fetches: dict[str, int],
    ) -> list[Any]:
        metrics = self._metrics
        counter = metrics.CounterMetricFamily(
            "mauth_authentications",
            "MAuth authentication attempts by outcome and protocol version.",
            labels=["outcome", "version"],
        )
        for labels, count in sorted(attempts.items()):
            counter.add_metric(list(labels), count)
        cumulative, running = [], 0
        for bound, count in zip((*DURATION_BUCKETS, float("inf")), buckets, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else str(float(bound)), running))
        histogram = metrics.HistogramMetricFamily(
            "mauth_authentication_duration_seconds",
            "Time spent authenticating (and authorizing) one request.",
            buckets=cumulative,
            sum_value=total,
        )
        fetched = metrics.CounterMetricFamily(
            "mauth_key_fetches",
            "Public keys asked of the MAuth service, by outcome.",
            labels=["outcome"],
        )
        for outcome, count in sorted(fetches.items()):
            fetched.add_metric([outcome], count)
        return [counter, histogram, fetched]


def _install(prometheus_client: Any, target: Any) -> Callable[[], None]:
    from prometheus_client import metrics_core

    collector = _Collector(metrics_core)
    target.register(collector)
    unsubscribe = subscribe(collector.record)

    def stop() -> None:
        unsubscribe()
        with _exporters_lock:
            if _exporters.get(id(target)) is not stop:
                return  # already stopped
            del _exporters[id(target)]
            target.unregister(collector)

    return stop
