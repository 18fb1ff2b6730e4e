"""MAuth for ``requests``: sign outgoing requests, optionally authenticate the responses.

    session.auth = MAuth(app_uuid, private_key_pem, "v1,v2")

File bodies are hashed and rewound; generator bodies are collected (in memory up
to 1 MiB, past that in a temporary file, so memory stays bounded), sent sized.

Redirects are followed as the session is configured to, but requests copies the
first request's headers onto the next one and never calls the auth again. A response
hook sees each redirect before requests builds the follow-up: the MAuth headers are
removed from it when it leaves the signed request's origin, and replaced by a fresh
signature of the follow-up (its method, URL and body) when it stays.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urljoin, urlparse

import requests
from requests.sessions import SessionRedirectMixin
from requests.utils import requote_uri

from .body import in_memory, is_rereadable, iter_chunks, spool_body
from .client import SigningClientAuth, same_origin, strip_mauth_headers
from .signable import RequestSignable

_REDIRECTS = SessionRedirectMixin()  # requests' own redirect rules, used without a session


class MAuth(SigningClientAuth, requests.auth.AuthBase):
    """A ``requests`` auth that signs each request with MAuth; arguments as
    :class:`~mauth_client.client.SigningClientAuth`.

    With ``authenticate_responses=True`` an unsigned or tampered response raises
    :class:`~mauth_client.exceptions.InauthenticError` from the call, and a good one
    carries the server's app UUID in ``response.mauth_app_uuid``.
    """

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if in_memory(request.body) is None and not is_rereadable(request.body):
            # A generator: spooled, so now of known length. requests set
            # "Transfer-Encoding: chunked" for it but will add a Content-Length after
            # this hook; both at once would corrupt the request, so send it sized.
            spooled = spool_body(iter_chunks(request.body))
            if isinstance(spooled, bytes):
                size = len(spooled)
            else:
                size = spooled.seek(0, 2)
                spooled.seek(0)
            request.body = spooled  # type: ignore[assignment]  # requests sends files too
            # Where requests rewinds the body to before sending it again on a 307/308.
            request._body_position = 0  # type: ignore[attr-defined]
            request.headers.pop("Transfer-Encoding", None)
            request.headers["Content-Length"] = str(size)
        request.headers.update(self.make_headers(request))
        hook = functools.partial(self._before_redirect, request.url or "")
        request.register_hook("response", hook)  # type: ignore[no-untyped-call]
        if self._checker is not None:
            request.register_hook("response", self._authenticate_response)  # type: ignore[no-untyped-call]
        return request

    def make_headers(self, request: requests.PreparedRequest) -> dict[str, str]:
        """The MAuth headers for a prepared request (upstream API)."""
        return self.signer.signed_headers(
            RequestSignable(
                method=request.method or "GET", url=request.url or "/", body=request.body
            )
        )

    def _before_redirect(
        self, signed_url: str, response: requests.Response, **_: Any
    ) -> requests.Response:
        """On a redirect, fix the headers requests will copy onto the follow-up."""
        follow_up = _follow_up(response)
        if follow_up is None:
            return response
        template = response.request  # requests copies this one to build the follow-up
        strip_mauth_headers(template.headers)
        if same_origin(follow_up.url or "", signed_url):
            position = getattr(follow_up, "_body_position", None)
            seek = getattr(follow_up.body, "seek", None)
            if isinstance(position, int) and callable(seek):
                seek(position)  # hash the body as it will be sent again
            template.headers.update(self.make_headers(follow_up))
        return response

    def _authenticate_response(self, response: requests.Response, **_: Any) -> requests.Response:
        assert self._checker is not None
        result = self._checker.check(response.status_code, response.content, response.headers)
        response.mauth_app_uuid = result.app_uuid  # type: ignore[attr-defined]
        response.mauth_protocol_version = result.protocol_version  # type: ignore[attr-defined]
        return response


def _follow_up(response: requests.Response) -> requests.PreparedRequest | None:
    """The request requests will send after ``response``, as far as MAuth signs it
    (method, URL, body), or None when it is not a redirect. Mirrors
    ``Session.resolve_redirects``."""
    target = _REDIRECTS.get_redirect_target(response)
    if not target:
        return None
    follow_up = response.request.copy()
    if target.startswith("//"):  # scheme-relative (RFC 3986 section 4.2)
        target = f"{urlparse(response.url).scheme}:{target}"
    if urlparse(target).netloc:
        follow_up.url = requote_uri(target)
    else:
        follow_up.url = urljoin(response.url, requote_uri(target))
    _REDIRECTS.rebuild_method(follow_up, response)
    if response.status_code not in (307, 308):  # only these keep the body
        follow_up.body = None
    return follow_up
