"""The MAuth service's protocol without any HTTP library (``mauth-protocol.md`` section 5).

One request builder and one set of rules for every transport (``requests`` today, an
``httpx.AsyncClient`` one can follow): the calls are signed with the core
:class:`~mauth_client.signer.Signer`, and :meth:`KeyServiceProtocol.call` is a
generator that says what to do next (:class:`Send` a request, :class:`Wait` before a
retry) and judges each outcome, so retries, redirects and the whole-call deadline are
decided here once. A transport only sends one request without following redirects,
reads at most :data:`MAX_ANSWER_BYTES` of the answer before the step's deadline, and
raises a :class:`TransportFailure` subclass when it cannot. :func:`run` and
:func:`run_async` drive a call with a sync or an async transport.

An async transport (``httpx.AsyncClient``) is a coroutine ``send(step)`` for
:func:`run_async`: ``follow_redirects=False``, a streamed answer read in chunks up to
``step.max_bytes``, the whole step under ``anyio.fail_after(step.deadline -
time.monotonic())`` (raise :class:`ServiceTimedOut` with ``deadline=True`` when it
fires), connection errors as :class:`ServiceUnreachable`; the rules stay here.

Answers are checked here too: the JSON shape, that ``security_token.app_uuid`` is the
app that was asked for (an answer for another app is how a forked worker sharing a
connection would impersonate it), and the ``Cache-Control: max-age``.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import quote, urljoin, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from .config import Config, redact_url
from .exceptions import InauthenticError, KeyFormatError, UnableToAuthenticateError
from .keys import load_public_key
from .signable import RequestSignable
from .signed import SignatureInfo
from .signer import Signer

#: The largest answer read from the service: a security token is about 1 KiB.
MAX_ANSWER_BYTES = 64 * 1024
#: Same-origin redirects followed per call (each one re-signed).
MAX_REDIRECTS = 3
USER_AGENT = "mauth-client-python/2"

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_REDIRECTS = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def max_age(cache_control: str | None, default: int, ceiling: int) -> int:
    """Seconds a response may be cached per ``Cache-Control: max-age`` (``default`` if absent)."""
    if cache_control:
        if re.search(r"\b(no-store|no-cache)\b", cache_control, re.IGNORECASE):
            return 0
        match = _MAX_AGE.search(cache_control)
        if match:
            return min(int(match.group(1)[:9]), ceiling)
    return default


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, default ports filled in, for same-origin checks."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # a malformed port matches nothing
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


# --- What a transport is asked to do, and what it answers --------------------------------


@dataclass(frozen=True)
class ServiceRequest:
    """A signed request to the service, ready to send as is."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class ServiceAnswer:
    """The service's answer: status, headers (keys in lower case) and the whole body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Send:
    """Send ``request`` once (no redirects); finish reading the answer by ``deadline``
    (a :func:`time.monotonic` value) and read no more than ``max_bytes`` of it."""

    request: ServiceRequest
    connect_timeout: float
    read_timeout: float
    deadline: float
    max_bytes: int = MAX_ANSWER_BYTES


@dataclass(frozen=True)
class Wait:
    """Sleep before the next attempt."""

    seconds: float


class TransportFailure(Exception):
    """Raised by a transport when a :class:`Send` step got no complete answer."""

    def __init__(self, cause: str = "") -> None:
        super().__init__(cause)
        self.cause = cause  # an exception class name: never a URL or a secret


class ServiceUnreachable(TransportFailure):
    """Connecting failed or the connection broke before an answer (retried)."""


class ServiceTimedOut(TransportFailure):
    """A read timed out, or the step's deadline passed while reading."""

    def __init__(self, cause: str = "", *, deadline: bool = False) -> None:
        super().__init__(cause)
        self.deadline = deadline


class AnswerTooLarge(TransportFailure):
    """The answer is longer than the step's ``max_bytes``."""


Step = Send | Wait
Outcome = ServiceAnswer | TransportFailure | None
Flow = Generator[Step, Outcome, ServiceAnswer]


# --- The protocol ------------------------------------------------------------------------


class KeyAnswer(NamedTuple):
    """A ``security_tokens`` answer: the key (None: the app is unknown) and seconds to cache."""

    key: rsa.RSAPublicKey | None
    ttl: int


class KeyServiceProtocol:
    """Builds the signed calls to the MAuth service and judges its answers.

    ``clock`` is monotonic seconds (the deadline's); it is injectable for tests.
    """

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.monotonic) -> None:
        config.require("mauth_url", "app_uuid", "private_key")
        assert config.mauth_url is not None
        assert config.app_uuid is not None
        assert config.private_key is not None
        self.config = config
        self.base = f"{config.mauth_url.rstrip('/')}/mauth/{config.mauth_api_version}"
        self.origin = origin(self.base)
        self.shown_url = redact_url(config.mauth_url)  # for messages: no credentials
        self.signer = Signer(config.app_uuid, config.private_key, config.sign_versions)
        self._clock = clock

    # --- requests ----------------------------------------------------------------------

    def sign(
        self, method: str, url: str, body: bytes = b"", content_type: str | None = None
    ) -> ServiceRequest:
        """A request to ``url`` (on the service) signed with this app's key."""
        headers = {"User-Agent": USER_AGENT}
        if content_type is not None:
            headers["Content-Type"] = content_type
        headers.update(
            self.signer.signed_headers(RequestSignable(method=method, url=url, body=body))
        )
        return ServiceRequest(method, url, headers, body)

    def security_token_request(self, app_uuid: str) -> ServiceRequest:
        # Percent-encode everything: "../" in a header must not reach another path (section 5).
        return self.sign("GET", f"{self.base}/security_tokens/{quote(app_uuid, safe='')}.json")

    def ticket_request(self, ticket: Mapping[str, object]) -> ServiceRequest:
        body = json.dumps({"authentication_ticket": dict(ticket)}).encode()
        return self.sign(
            "POST", f"{self.base}/authentication_tickets.json", body, "application/json"
        )

    def authentication_ticket(
        self, signable: RequestSignable, info: SignatureInfo
    ) -> ServiceRequest:
        """Remote mode: ask the service whether ``info`` signs ``signable``."""
        return self.ticket_request(authentication_ticket(signable, info))

    # --- the rules of one call -----------------------------------------------------------

    def call(self, request: ServiceRequest) -> Flow:
        """Send ``request`` under this client's rules; return the final answer.

        - The whole call (connects, retries, backoff, redirects, reading) ends by
          ``config.lookup_deadline`` seconds, however slowly the answer trickles in.
        - Connection failures and 5xx answers are retried ``config.retries`` times with
          exponential backoff; timeouts are not (they already waited long enough).
        - Redirects are followed, re-signed, only within the service's origin: another
          origin would receive a signed request and could answer with any key.
        - An answer larger than :data:`MAX_ANSWER_BYTES` is refused.
        """
        config = self.config
        deadline = self._clock() + config.lookup_deadline
        attempt = redirects = 0
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise self._too_slow(deadline=True)
            outcome = yield Send(
                request,
                min(config.connect_timeout, remaining),
                min(config.read_timeout, remaining),
                deadline,
            )
            if isinstance(outcome, ServiceTimedOut):
                raise self._too_slow(outcome.deadline or self._clock() >= deadline)
            if isinstance(outcome, AnswerTooLarge):
                raise UnableToAuthenticateError(
                    f"the MAuth service at {self.shown_url} sent an answer larger than "
                    f"{MAX_ANSWER_BYTES // 1024} KiB; refused"
                )
            if isinstance(outcome, ServiceUnreachable):
                failure: ServiceUnreachable | ServiceAnswer = outcome
            elif isinstance(outcome, TransportFailure):
                raise UnableToAuthenticateError(
                    f"calling the MAuth service failed ({outcome.cause})"
                )
            elif isinstance(outcome, ServiceAnswer):
                location = outcome.header("location")
                if outcome.status in _REDIRECTS and location:
                    redirects += 1
                    request = self._redirected(request, outcome.status, location, redirects)
                    continue
                if outcome.status < 500:
                    return outcome
                failure = outcome
            else:  # pragma: no cover - a driver bug
                raise TypeError(f"a transport answered {type(outcome).__name__}")
            backoff = config.retry_backoff * (2**attempt)
            last = attempt >= config.retries or self._clock() + backoff >= deadline
            if last:
                if isinstance(failure, ServiceAnswer):
                    return failure  # the caller says what the 5xx means
                raise UnableToAuthenticateError(
                    f"the MAuth service at {self.shown_url} could not be reached ({failure.cause})"
                )
            attempt += 1
            yield Wait(backoff)

    def _redirected(
        self, request: ServiceRequest, status: int, location: str, count: int
    ) -> ServiceRequest:
        target = urljoin(request.url, location.strip())
        if origin(target) != self.origin:
            raise UnableToAuthenticateError(
                f"the MAuth service at {self.shown_url} redirected to another origin "
                f"({origin(target)[0]}://{origin(target)[1]}); not followed"
            )
        if count > MAX_REDIRECTS:
            raise UnableToAuthenticateError(
                f"the MAuth service at {self.shown_url} redirected more than {MAX_REDIRECTS} times"
            )
        if status in (307, 308):  # same method and body (RFC 9110 section 15.4)
            return self.sign(
                request.method, target, request.body, request.headers.get("Content-Type")
            )
        method = "GET" if request.method != "HEAD" else "HEAD"
        return self.sign(method, target)

    def _too_slow(self, deadline: bool) -> UnableToAuthenticateError:
        if deadline:
            return UnableToAuthenticateError(
                f"the MAuth service at {self.shown_url} did not answer in full within "
                f"{self.config.lookup_deadline} s (MAUTH_LOOKUP_DEADLINE)"
            )
        return UnableToAuthenticateError(
            f"the MAuth service at {self.shown_url} did not answer within "
            f"{self.config.read_timeout} s"
        )

    # --- answers ---------------------------------------------------------------------------

    def security_token_answer(self, answer: ServiceAnswer, app_uuid: str) -> KeyAnswer:
        """The key in a ``security_tokens`` answer and how long to cache it; ``key`` is
        None for a 404 (an unknown app). Raises :class:`UnableToAuthenticateError` for
        any other status or a malformed answer."""
        if answer.status == 404:
            return KeyAnswer(None, self.config.negative_cache_ttl)
        if answer.status != 200:
            raise UnableToAuthenticateError(
                f"the MAuth service answered {answer.status} when asked for the public "
                f"key of app {app_uuid!r}"
            )
        key = parse_security_token(answer.body, app_uuid)
        ttl = max_age(
            answer.header("cache-control"), self.config.default_key_ttl, self.config.max_key_ttl
        )
        return KeyAnswer(key, ttl)


def authentication_ticket(signable: RequestSignable, info: SignatureInfo) -> dict[str, object]:
    """The ``authentication_ticket`` object asking whether ``info`` signs ``signable``."""
    body = signable._hashes.materialize()  # the ticket carries the body itself
    ticket: dict[str, object] = {
        "verb": signable.method,
        "app_uuid": info.app_uuid,
        "client_signature": info.signature,
        "request_url": signable.path,
        "request_time": info.time,
        "b64encoded_body": base64.b64encode(body).decode("ascii"),
    }
    if info.version == 2:
        ticket["query_string"] = signable.query_string
        ticket["token"] = info.token
    return ticket


def ticket_verdict(status: int, info: SignatureInfo) -> None:
    """Return for an authentic ticket (2xx); raise :class:`InauthenticError` for 412 (or
    404 from old services), :class:`UnableToAuthenticateError` for anything else."""
    if 200 <= status < 300:
        return
    if status in (404, 412):
        raise InauthenticError(
            f"the MAuth service found the V{info.version} signature of app "
            f"{info.app_uuid!r} inauthentic ({status})"
        )
    raise UnableToAuthenticateError(
        f"the MAuth service answered {status} to an authentication ticket"
    )


def parse_security_token(content: bytes, app_uuid: str) -> rsa.RSAPublicKey:
    """The public key of a ``security_tokens`` answer for ``app_uuid``.

    The answer must name ``app_uuid`` (case aside) in ``security_token.app_uuid``: a
    key for another app, whatever the reason it came back (a connection shared after
    ``fork``, a confused proxy), would let that app be taken for this one.
    """
    what = f"the MAuth service's answer for app {app_uuid!r}"
    if len(content) > MAX_ANSWER_BYTES:
        raise UnableToAuthenticateError(f"{what} is larger than {MAX_ANSWER_BYTES // 1024} KiB")
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise UnableToAuthenticateError(f"{what} is not JSON") from None
    token = document.get("security_token") if isinstance(document, dict) else None
    pem = token.get("public_key_str") if isinstance(token, dict) else None
    if not isinstance(pem, str) or not pem.strip():
        raise UnableToAuthenticateError(f"{what} has no security_token.public_key_str")
    assert isinstance(token, dict)
    try:
        key = load_public_key(pem)
    except KeyFormatError:
        raise UnableToAuthenticateError(f"{what} holds a public key that does not parse") from None
    named = token.get("app_uuid")
    if not isinstance(named, str) or named.strip().lower() != app_uuid.strip().lower():
        shown = named[:64] if isinstance(named, str) else named
        raise UnableToAuthenticateError(
            f"{what} is the key of another app ({shown!r}); refused"
            if isinstance(named, str)
            else f"{what} has no security_token.app_uuid; refused"
        )
    return key


# --- Drivers ---------------------------------------------------------------------------


def run(
    flow: Flow, send: Callable[[Send], ServiceAnswer], sleep: Callable[[float], object] = time.sleep
) -> ServiceAnswer:
    """Drive ``flow`` with a blocking transport ``send``."""
    step = next(flow)
    while True:
        outcome: Outcome
        if isinstance(step, Wait):
            sleep(step.seconds)
            outcome = None
        else:
            try:
                outcome = send(step)
            except TransportFailure as failure:
                outcome = failure
        try:
            step = flow.send(outcome)
        except StopIteration as done:
            result: ServiceAnswer = done.value
            return result


async def run_async(
    flow: Flow,
    send: Callable[[Send], Awaitable[ServiceAnswer]],
    sleep: Callable[[float], Awaitable[object]],
) -> ServiceAnswer:
    """Drive ``flow`` with an async transport ``send`` (``sleep``: e.g. ``asyncio.sleep``)."""
    step = next(flow)
    while True:
        outcome: Outcome
        if isinstance(step, Wait):
            await sleep(step.seconds)
            outcome = None
        else:
            try:
                outcome = await send(step)
            except TransportFailure as failure:
                outcome = failure
        try:
            step = flow.send(outcome)
        except StopIteration as done:
            result: ServiceAnswer = done.value
            return result
