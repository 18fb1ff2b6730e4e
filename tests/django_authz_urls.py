"""URLs and views for the Django authorization tests (``ROOT_URLCONF`` override)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path

from mauth_client.django import mauth_required


def _describe(request: HttpRequest) -> JsonResponse:
    permissions = getattr(request, "mauth_permissions", None)
    return JsonResponse(
        {
            "app_uuid": getattr(request, "mauth_app_uuid", "unset"),
            "permissions": sorted(permissions) if permissions is not None else "unset",
            "environ": sorted(request.META.get("mauth.permissions", ["unset"])),
        }
    )


@mauth_required(permissions={"studies:write"})
def write(request: HttpRequest) -> JsonResponse:
    return _describe(request)


@mauth_required(permissions={"studies:write", "admin"})
def admin_write(request: HttpRequest) -> JsonResponse:
    return _describe(request)


@mauth_required
def bare(request: HttpRequest, rest: str = "") -> JsonResponse:
    return _describe(request)


def plain(request: HttpRequest, rest: str = "") -> JsonResponse:
    return _describe(request)


urlpatterns = [
    path("write", write),
    path("admin-write", admin_write),
    path("bare/<path:rest>", bare),
    path("plain/<path:rest>", plain),
]
