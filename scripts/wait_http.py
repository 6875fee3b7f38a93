"""Wait until every URL answers 200, for scripts/infra.sh (Keycloak's health, then its discovery document).

The standard library only: it runs with the machine's python3 before any virtualenv exists.

    python3 scripts/wait_http.py --timeout 240 --pid 1234 URL [URL ...]

Exit status 0 once all of them answered 200 (in order), 1 on timeout or if process --pid died first.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone: its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (our own http:// URLs)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--pid", type=int, default=0, help="give up as soon as this process is gone")
    args = parser.parse_args(argv)
    started = time.monotonic()
    deadline = started + args.timeout
    for url in args.urls:
        while not answers(url):
            if args.pid and not alive(args.pid):
                print(f"[wait_http] process {args.pid} exited before {url} answered", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"[wait_http] {url} did not answer 200 within {args.timeout:.0f}s", file=sys.stderr)
                return 1
            time.sleep(0.5)
        print(f"[wait_http] {url} answered after {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
