"""`make bench`: run every benchmark in turn (pass --quick for the short mode)."""

from __future__ import annotations

import importlib
import inspect
import os
import sys

from bench.common import QUICK_SUFFIX_ENV

BENCHMARKS = [
    "bench.engine",
    "bench.annual",
    "bench.growth",
    "bench.throughput",
    "bench.scheduler",
    "bench.stabilization",
]
# Benchmarks whose main() reads sys.argv itself: their arguments in each mode.
OWN_ARGV = {"bench.stabilization": {"quick": ["--cycles", "60"], "full": []}}


def main() -> None:
    quick = ["--quick"] if "--quick" in sys.argv[1:] else []
    if quick:
        os.environ[QUICK_SUFFIX_ENV] = "_quick"  # results/<name>_quick.json
    for name in BENCHMARKS:
        module = importlib.import_module(name)
        if inspect.signature(module.main).parameters:
            module.main(quick)
        else:
            sys.argv = [name, *OWN_ARGV.get(name, {}).get("quick" if quick else "full", [])]
            module.main()


if __name__ == "__main__":
    main()
