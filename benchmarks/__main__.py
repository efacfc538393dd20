"""``make bench``: the performance suite. Each figure is a ratio measured side by side in one run.

``python -m benchmarks [--quick]`` runs every suite; ``python -m benchmarks ledger --quick`` one.
"""

from __future__ import annotations

import importlib
import sys

SUITES = ["ledger_bench", "web_bench", "proofs_bench", "api_bench", "footprint_bench",
          "kilograms_bench"]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    chosen = [s for s in SUITES if args and args[0] in (s, s.removesuffix("_bench"))]
    if chosen:
        args = args[1:]
    status = 0
    for name in chosen or SUITES:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError:
            continue
        print(f"\n=== {name} ===", flush=True)
        result = module.main(args)
        status = status or int(result or 0)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
