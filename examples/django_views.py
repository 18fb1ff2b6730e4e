"""Django views protected with mauth_required / mauth_optional. Runs as written.

    python3 examples/django_views.py

A real project puts ``MAUTH = {...}`` in settings.py and, to protect every view,
``"mauth_client.django.MAuthMiddleware"`` in ``MIDDLEWARE``.
"""

from __future__ import annotations

import django
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import LocalMAuthService


def main() -> None:
    with LocalMAuthService() as service:
        me, caller = service.new_app(), service.new_app()
        settings.configure(
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["*"],
            SECRET_KEY="example-only",
            MAUTH={
                "APP_UUID": me.app_uuid,
                "MAUTH_PRIVATE_KEY": me.private_key,
                "MAUTH_URL": service.url,
            },
        )
        django.setup()
        from django.test import Client

        from mauth_client.django import mauth_optional, mauth_required

        @mauth_required
        def orders(request: HttpRequest) -> JsonResponse:
            return JsonResponse({"caller": request.mauth_app_uuid})  # type: ignore[attr-defined]

        @mauth_optional
        def greeting(request: HttpRequest) -> JsonResponse:
            return JsonResponse({"caller": request.mauth_app_uuid})  # type: ignore[attr-defined]

        globals()["urlpatterns"] = [path("orders", orders), path("greeting", greeting)]
        headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
            RequestSignable(method="GET", url="/orders")
        )
        signed = Client().get("/orders", headers=headers)
        unsigned = Client().get("/orders")
        optional = Client().get("/greeting")
        print(f"signed: {signed.status_code} {signed.json()}")
        print(f"unsigned: {unsigned.status_code} {unsigned.json()['errors']['mauth'][0][:50]}...")
        print(f"optional, unsigned: {optional.status_code} {optional.json()}")
        assert (signed.status_code, unsigned.status_code, optional.status_code) == (200, 401, 200)


if __name__ == "__main__":
    main()
