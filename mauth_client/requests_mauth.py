"""MAuth for ``requests``: sign outgoing requests, optionally authenticate the responses.

    session.auth = MAuth(app_uuid, private_key_pem, "v1,v2")

File bodies are hashed and rewound; generator bodies are collected (in memory up
to 1 MiB, past that in a temporary file, so memory stays bounded), sent sized.
"""

from __future__ import annotations

from typing import Any

import requests

from .body import in_memory, is_rereadable, iter_chunks, spool_body
from .client import SigningClientAuth
from .signable import RequestSignable


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
            request.headers.pop("Transfer-Encoding", None)
            request.headers["Content-Length"] = str(size)
        request.headers.update(self.make_headers(request))
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

    def _authenticate_response(self, response: requests.Response, **_: Any) -> requests.Response:
        assert self._checker is not None
        result = self._checker.check(response.status_code, response.content, response.headers)
        response.mauth_app_uuid = result.app_uuid  # type: ignore[attr-defined]
        response.mauth_protocol_version = result.protocol_version  # type: ignore[attr-defined]
        return response
