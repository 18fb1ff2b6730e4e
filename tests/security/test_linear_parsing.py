"""Issue 10 item 3: header parsing is linear in the header's length, V1 and V2.

Fourteen hostile shapes, each timed at 8 KB and 64 KB; the ratio must stay near
linear (8x the input may cost at most 16x the time, a quadratic parser costs 64x).
Only ratios are asserted; the 64 KB worst case is printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from mauth_client.signed import Signed


def shapes() -> dict[str, Callable[[int], dict[str, str]]]:
    return {
        "MWS + spaces + letter": lambda n: {"X-MWS-Authentication": "MWS" + " " * n + "a"},
        "MWS + spaces + colon": lambda n: {"X-MWS-Authentication": "MWS" + " " * n + ":"},
        "token spaces app no colon": lambda n: {"X-MWS-Authentication": "a " + "b " * (n // 2)},
        "long X-MWS-Authentication": lambda n: {"X-MWS-Authentication": "MWS a:" + "A" * n},
        "many colons V1": lambda n: {"X-MWS-Authentication": "MWS " + ":" * n},
        "many colons V2": lambda n: {"MCC-Authentication": "MWSV2 " + ":" * n + ";"},
        "many semicolons V2": lambda n: {"MCC-Authentication": "MWSV2 a:" + ";" * n},
        "V2 spaces": lambda n: {"MCC-Authentication": "MWSV2" + " " * n + "a"},
        "long MCC-Authentication": lambda n: {"MCC-Authentication": "MWSV2 a:" + "A" * n + ";"},
        "no token spaces": lambda n: {"X-MWS-Authentication": " " * n + "a:b"},
        "alternating space colon": lambda n: {"X-MWS-Authentication": "M" + " :" * (n // 2)},
        "long time": lambda n: {"MCC-Authentication": "MWSV2 a:s;", "MCC-Time": "9" * n},
        "letters then colon": lambda n: {"X-MWS-Authentication": "a" * n + ":"},
        "spaces and letters": lambda n: {"X-MWS-Authentication": "MWS " + "a " * (n // 2) + ":"},
    }


def _cost(make: Callable[[int], dict[str, str]], size: int) -> float:
    headers = make(size)
    best = float("inf")
    for _ in range(9):
        started = time.perf_counter()
        for _ in range(200):
            signed = Signed.from_headers(headers)
            signed.v1, signed.v2, signed.token, signed.app_uuid  # noqa: B018 - parse both
        best = min(best, time.perf_counter() - started)
    return best / 200


@pytest.mark.parametrize("name", sorted(shapes()))
def test_parsing_grows_linearly(name: str) -> None:
    make = shapes()[name]
    small, large = _cost(make, 8 * 1024), _cost(make, 64 * 1024)
    ratio = large / max(small, 1e-7)
    print(f"{name}: 8 KB {small * 1e6:.1f} us, 64 KB {large * 1e6:.1f} us, ratio {ratio:.1f}")
    assert ratio < 16, f"{name}: 8x the input cost {ratio:.1f}x the time"


def _cost_of(call: Callable[[], object]) -> float:
    """Best of 9 rounds of 200 calls: microsecond calls need many to beat timer noise."""
    best = float("inf")
    for _ in range(9):
        started = time.perf_counter()
        for _ in range(200):
            call()
        best = min(best, time.perf_counter() - started)
    return best / 200


@pytest.mark.parametrize("name", sorted(shapes()))
def test_the_parser_itself_is_linear_below_the_length_cap(name: str) -> None:
    """The cap makes long headers cheap; the parser must be linear without it too."""
    from mauth_client.signed import _loose, _split_v1

    def parse_all(value: str) -> object:
        return _split_v1(value), _loose(value), value.partition(":")

    values = {size: next(iter(shapes()[name](size).values())) for size in (8192, 65536)}
    small = _cost_of(lambda: parse_all(values[8192]))
    large = _cost_of(lambda: parse_all(values[65536]))
    ratio = large / max(small, 1e-7)
    print(f"{name}: uncapped 64 KB {large * 1e3:.3f} ms, ratio {ratio:.1f}")
    assert ratio < 16, f"{name}: 8x the input cost {ratio:.1f}x the time"


@pytest.mark.parametrize("name", sorted(shapes()))
def test_refusing_hostile_headers_is_linear_end_to_end(name: str) -> None:
    from mauth_client.authenticator import Authenticator
    from mauth_client.exceptions import MAuthError
    from mauth_client.key_source import StaticKeySource

    authenticator = Authenticator(StaticKeySource({}))

    def refuse(headers: dict[str, str]) -> None:
        with pytest.raises(MAuthError):
            authenticator.precheck("GET", "", Signed.from_headers(headers))

    small_headers, large_headers = shapes()[name](8192), shapes()[name](65536)
    small = _cost_of(lambda: refuse(small_headers))
    large = _cost_of(lambda: refuse(large_headers))
    ratio = large / max(small, 1e-7)
    print(f"{name}: refused at 64 KB in {large * 1e3:.3f} ms, ratio {ratio:.1f}")
    assert ratio < 16
