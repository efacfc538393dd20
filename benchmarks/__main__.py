"""``make bench``: the performance suite. Each figure is a ratio measured side by side in one run."""

from __future__ import annotations


def main() -> None:
    from . import ledger_bench

    ledger_bench.main()


if __name__ == "__main__":
    main()
