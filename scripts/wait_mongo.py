"""Wait until mongod is a writable replica-set PRIMARY (used by scripts/infra.sh).

With ``--initiate HOST:PORT`` it also runs replSetInitiate (single member) the
first time, when the node reports it has no replica-set config yet. Transactions
and change streams, which the project relies on, need a replica set.
Exit 0 when PRIMARY, 1 on timeout (with the last error on stderr).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

NOT_YET_INITIALIZED = 94
ALREADY_INITIALIZED = 23


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", default="mongodb://127.0.0.1:27017/")
    parser.add_argument("--initiate", metavar="HOST:PORT", help="member address for replSetInitiate")
    parser.add_argument("--replset", default="rs0")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    # Our own freshly started node is not a replica set yet, so it must be
    # reached directly; an external URI is used as given.
    extra: dict[str, Any] = {"directConnection": True} if args.initiate else {}
    client: MongoClient[dict[str, Any]] = MongoClient(args.uri, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000, **extra)
    deadline = time.monotonic() + args.timeout
    last_error: object = "no answer"
    try:
        while time.monotonic() < deadline:
            try:
                if args.initiate:
                    try:
                        client.admin.command("replSetGetStatus")
                    except OperationFailure as exc:
                        if exc.code != NOT_YET_INITIALIZED:
                            raise
                        config = {"_id": args.replset, "members": [{"_id": 0, "host": args.initiate}]}
                        try:
                            client.admin.command("replSetInitiate", config)
                        except OperationFailure as init_exc:
                            if init_exc.code != ALREADY_INITIALIZED:
                                raise
                hello = client.admin.command("hello")
                if hello.get("isWritablePrimary"):
                    return 0
                last_error = f"not PRIMARY yet (setName={hello.get('setName')!r})"
            except PyMongoError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
    finally:
        client.close()
    print(f"MongoDB at {args.uri} not PRIMARY after {args.timeout:.0f}s: {last_error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
