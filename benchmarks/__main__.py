"""``make bench``: the performance suite. Each figure is a ratio measured side by side in one run:
the median of per-round ratios, with their spread; a figure whose rounds disagree by more than
30% is UNSTABLE rather than PASS or MISS.

``python -m benchmarks [--quick]`` runs every suite; ``python -m benchmarks ledger --quick`` one;
``python -m benchmarks --help`` lists them, ``python -m benchmarks ledger --help`` one's options.
"""

from __future__ import annotations

import importlib
import sys

SUITES = {
    "ledger_bench": "retire vs a one-row INSERT; verify over the database; block size; "
                    "history",
    "chain_bench": "retirements per second, 16 clients vs 1, on the chain head; its lock hold "
                   "time",
    "web_bench": "home, catalogue, project, registry and certificate pages vs a bare route "
                 "under gunicorn; ETag 304s; 100 checkouts for 50 t",
    "proofs_bench": "offline verify of 1,000,000 entries vs SHA-256 alone; inclusion proofs "
                    "at 1,000,000 vs 1,000 leaves",
    "api_bench": "quote -> order -> retire through /api/v1 vs a bare JSON route",
    "footprint_bench": "footprint result page and airport search vs a bare route",
    "kilograms_bench": "kilogram retirements vs tonne retirements through the API, 16 clients",
    "certificates_bench": "a certificate PDF's second request vs its first",
}


def usage() -> str:
    lines = ["usage: python -m benchmarks [SUITE] [--quick] [--backend sqlite|postgres|both] "
             "[suite options]", "",
             "Runs every suite, or the one named. Each prints a table of ratios measured side",
             "by side in one run: median of per-round ratios, spread, PASS / MISS / UNSTABLE.",
             "", "suites:"]
    for name, what in SUITES.items():
        lines.append(f"  {name.removesuffix('_bench'):<13} {what}")
    lines += ["", "options every suite takes:",
              "  --quick               small sizes: a smoke run that checks the suite works",
              "  --backend B           sqlite, postgres or both (default both)",
              "  --postgres-url URL    where to create scratch databases",
              "", "python -m benchmarks SUITE --help shows a suite's own options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    chosen = [s for s in SUITES if args and args[0] in (s, s.removesuffix("_bench"))]
    if chosen:
        args = args[1:]
    elif args and args[0] in ("-h", "--help"):
        print(usage())
        return 0
    elif args and not args[0].startswith("-"):
        print(f"python -m benchmarks: no suite {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    status = 0
    for name in chosen or SUITES:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{name}":
                raise
            continue
        print(f"\n=== {name} ===", flush=True)
        result = module.main(args)
        status = status or int(result or 0)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
