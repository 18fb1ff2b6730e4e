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
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger("mauth_client")

T = TypeVar("T")


@dataclass(frozen=True)
class Event:
    """One thing the authenticator did; see the module docstring for the fields."""

    kind: str
    outcome: str
    app_uuid: str | None = None
    protocol_version: str | None = None
    reason: str = ""
    duration: float = 0.0


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


def tracer() -> Any | None:
    """The tracer for spans, or None when no OpenTelemetry tracer provider is configured.

    Nothing is imported here: if the application never imported ``opentelemetry.trace``
    (the SDK and every instrumentation do) no provider can be configured, so the check
    is one dictionary lookup. Otherwise it is ``get_tracer_provider()`` compared with
    the API's placeholder providers (``ProxyTracerProvider``, ``NoOpTracerProvider``).
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider.get_tracer("mauth_client")


def active() -> bool:
    """True when an authentication attempt has to be timed, reported or traced."""
    return bool(listeners) or tracer() is not None


def version_label(protocol_version: int | None) -> str | None:
    return None if protocol_version is None else f"v{protocol_version}"


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
            Event(
                "authentication",
                outcome,
                app_uuid,
                protocol_version,
                reason,
                time.perf_counter() - start,
            )
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
                if span is not None:
                    span.set_attribute("mauth.app_uuid", app_uuid)
                    span.set_attribute("mauth.outcome", outcome)
                if listeners:
                    emit(
                        Event(
                            "key_fetch",
                            outcome,
                            app_uuid,
                            None,
                            reason,
                            time.perf_counter() - start,
                        )
                    )

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
    except ImportError:
        raise ImportError(
            "mauth_client.observability.prometheus needs prometheus-client: "
            "pip install 'mauth-client[prometheus]'"
        ) from None
    target = prometheus_client.REGISTRY if registry is None else registry
    with _exporters_lock:
        existing = _exporters.get(id(target))
        if existing is not None:
            return existing
        stop = _install(prometheus_client, target)
        _exporters[id(target)] = stop
        return stop


def _install(prometheus_client: Any, target: Any) -> Callable[[], None]:
    attempts = prometheus_client.Counter(
        "mauth_authentications",
        "MAuth authentication attempts by outcome and protocol version.",
        ["outcome", "version"],
        registry=target,
    )
    duration = prometheus_client.Histogram(
        "mauth_authentication_duration_seconds",
        "Time spent authenticating (and authorizing) one request.",
        buckets=DURATION_BUCKETS,
        registry=target,
    )
    fetches = prometheus_client.Counter(
        "mauth_key_fetches",
        "Public keys asked of the MAuth service, by outcome.",
        ["outcome"],
        registry=target,
    )
    children: dict[tuple[str, str], Any] = {}  # labels() once per label pair: the hot path

    def record(event: Event) -> None:
        if event.kind == "authentication":
            labels = (event.outcome, event.protocol_version or "none")
            child = children.get(labels)
            if child is None:
                child = children[labels] = attempts.labels(*labels)
            child.inc()
            duration.observe(event.duration)
        elif event.kind == "key_fetch":
            fetches.labels(event.outcome).inc()

    unsubscribe = subscribe(record)

    def stop() -> None:
        unsubscribe()
        with _exporters_lock:
            if _exporters.get(id(target)) is not stop:
                return  # already stopped
            del _exporters[id(target)]
            for collector in (attempts, duration, fetches):
                target.unregister(collector)

    return stop
