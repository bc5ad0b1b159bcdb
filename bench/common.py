"""Shared bench helpers: machine description, timing, result tables written as JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
    }


def timed(func: Callable[[], object], runs: int, warmup: int = 10) -> list[float]:
    """Durations in ms of `runs` calls after a warm-up."""
    for _ in range(warmup):
        func()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p95 and mean of ms samples."""
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "n": len(ordered),
    }


QUICK_SUFFIX_ENV = "FENGQIAO_BENCH_RESULT_SUFFIX"


def report(name: str, rows: list[dict[str, Any]], notes: list[str] | None = None) -> None:
    """Print a table and write it with the machine description to bench/results/<name>.json."""
    info = machine()
    print(
        f"\n== {name} ==  ({info['cpu']}, {info['cores']} cores, {info['memory']}, Python {info['python']})"
    )
    if rows:
        keys = list(rows[0].keys())
        widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
        print("  ".join(k.ljust(widths[k]) for k in keys))
        for r in rows:
            print("  ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys))
    for note in notes or []:
        print(note)
    RESULTS.mkdir(exist_ok=True)
    # The short mode's figures never replace the full run's (`make bench-quick` sets this).
    suffix = os.environ.get(QUICK_SUFFIX_ENV, "")
    if suffix and not name.endswith(suffix):
        name += suffix
    (RESULTS / f"{name}.json").write_text(
        json.dumps(
            {"machine": info, "rows": rows, "notes": notes or []},
            ensure_ascii=False,
            indent=2,
            default=str,
        )
    )
