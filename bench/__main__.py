"""`make bench`: run every benchmark in turn (pass --quick for the short mode)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["bench.engine", "bench.annual"]


def main() -> None:
    quick = ["--quick"] if "--quick" in sys.argv[1:] else []
    for name in BENCHMARKS:
        module = importlib.import_module(name)
        module.main(quick)


if __name__ == "__main__":
    main()
