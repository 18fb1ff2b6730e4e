"""An AWS Lambda handler that authenticates API Gateway / ALB proxy events.

    python3 examples/lambda_handler.py

In Lambda, configuration comes from the function's environment (MAUTH_URL,
APP_UUID, MAUTH_PRIVATE_KEY, the latter possibly KMS-encrypted). Here a local MAuth
service stands in, and a signed HTTP API (v2) event is built by hand.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mauth_client.lambda_authenticator import authenticate_event
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import LocalMAuthService


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    result = authenticate_event(event)
    if not result.authentic:
        return {
            "statusCode": result.status_code,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"errors": {"mauth": [result.message]}}),
        }
    return {"statusCode": 200, "body": json.dumps({"hello": result.app_uuid})}


def main() -> None:
    with LocalMAuthService() as service:
        me, caller = service.new_app(), service.new_app()
        os.environ.update(
            APP_UUID=me.app_uuid, MAUTH_PRIVATE_KEY=me.private_key, MAUTH_URL=service.url
        )
        body = b'{"order": 1}'
        headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
            RequestSignable(method="POST", url="/orders?express=true", body=body)
        )
        event = {
            "version": "2.0",
            "rawPath": "/orders",
            "rawQueryString": "express=true",
            "headers": {k.lower(): v for k, v in headers.items()},
            "requestContext": {"http": {"method": "POST"}},
            "body": body.decode(),
            "isBase64Encoded": False,
        }
        signed = handler(event)
        print(f"signed event: {signed['statusCode']} {signed['body']}")
        event["body"] = '{"order": 2}'
        tampered = handler(event)
        print(f"tampered event: {tampered['statusCode']} {tampered['body'][:70]}...")
        assert (signed["statusCode"], tampered["statusCode"]) == (200, 401)


if __name__ == "__main__":
    main()
