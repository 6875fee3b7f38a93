"""Intake throughput alone: `python -m bench --figures intake` (figure 3 of `make bench`).

    uv run python -m scripts.bench_intake [--requests 2000] [--concurrency 32]

The figure is driven by vegeta, a Go load generator (a Python client on two cores costs as much CPU
as the endpoint it measures), against intake's JSON API and a minimal endpoint doing the same outbox
write, and counts the accepted requests on Kafka.
"""

from __future__ import annotations

import argparse
import sys

from bench.__main__ import main as bench_main


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args, rest = parser.parse_known_args()
    return bench_main(
        ["--figures", "intake", "--intake-requests", str(args.requests), "--concurrency", str(args.concurrency), *rest]
    )


if __name__ == "__main__":
    sys.exit(main())
