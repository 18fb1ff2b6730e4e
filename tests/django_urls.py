"""URLs and views for the Django adapter tests."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path

from mauth_client.django import mauth_optional, mauth_required


def _describe(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "app_uuid": getattr(request, "mauth_app_uuid", "unset"),
            "version": request.META.get("mauth.protocol_version"),
            "body_len": len(request.body),
            "path": request.path,
        }
    )


@mauth_required
def required(request: HttpRequest, rest: str = "") -> JsonResponse:
    return _describe(request)


@mauth_optional
def optional(request: HttpRequest) -> JsonResponse:
    return _describe(request)


def plain(request: HttpRequest, rest: str = "") -> JsonResponse:
    return _describe(request)


urlpatterns = [
    path("required/<path:rest>", required),
    path("optional", optional),
    path("plain/<path:rest>", plain),
]
