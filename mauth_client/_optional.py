"""One clear error for a missing optional dependency: which extra to install.

Adapter modules import their framework at module level, inside::

    try:
        import httpx
    except ImportError as exc:
        raise missing_extra(__name__, "httpx", exc) from exc

so ``import mauth_client.httpx_mauth`` without httpx says
``pip install 'mauth-client[httpx]'`` rather than a bare ``No module named 'httpx'``.
"""

from __future__ import annotations


def missing_extra(module: str, extra: str, cause: ImportError) -> ModuleNotFoundError:
    """The error to raise from ``module`` when ``cause`` shows its extra is not installed.

    A ``ModuleNotFoundError`` (an ``ImportError``), so ``except ImportError`` and
    ``except ModuleNotFoundError`` around an optional import keep working.
    """
    missing = cause.name or "a dependency"
    error = ModuleNotFoundError(
        f"{module} needs {missing}, which is not installed: pip install 'mauth-client[{extra}]'",
        name=cause.name,
    )
    return error
