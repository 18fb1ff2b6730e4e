"""The real-server benchmark runs end to end (tiny durations; no timing is asserted).

Figures come from running ``benchmarks/bench_uvicorn.py`` by hand; this only keeps the
script from rotting: it starts uvicorn servers on 127.0.0.1, loads them from a child
process, runs the slow-key-service scenario and prints its tables.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the benchmark serves with uvicorn")
pytest.importorskip("starlette", reason="the benchmark's app is a Starlette app")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_uvicorn.py"


def test_bench_uvicorn_runs_end_to_end() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--no-upstream",  # the reference needs a separate venv; not part of the test run
            "--rounds=1",
            "--duration=0.3",
            "--warmup=0.1",
            "--procs=1",
            "--conns=2",
            "--signed=2",
            "--waiting=2",
            "--slow-latency=0.2",
            "--slow-timeout=3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "os.cpu_count() = " in out
    assert "req/s" in out and "p50 ms" in out and "p99 ms" in out and "p99 x/bare" in out
    assert "bare/x req/s" in out
    table = out[out.index("p99 x/bare") :]
    assert "\nbare " in table and "\nmauth_client (this) " in table
    assert "cached app's request while 2 requests wait on a slow key service (0.2 s)" in out
    assert "upstream reference: left out (--no-upstream)" in out
