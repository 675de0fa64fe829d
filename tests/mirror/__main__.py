"""`python -m tests.mirror build [--force]`: build (or find) the cached test mirror, print its path; also key, serve."""

from __future__ import annotations

import argparse
import sys
import time

from tests.mirror.builder import MirrorBuildError, content_key, ensure_mirror
from tests.mirror.server import MirrorServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mirror", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the mirror unless a build for the current inputs exists")
    build.add_argument("--force", action="store_true", help="rebuild even if it exists")
    commands.add_parser("key", help="print the content key of the current inputs")
    serve = commands.add_parser("serve", help="serve the mirror on 127.0.0.1 until interrupted")
    serve.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)

    if args.command == "key":
        print(content_key())
        return 0
    try:
        mirror = ensure_mirror(force=getattr(args, "force", False))
    except MirrorBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "build":
        print(mirror.root)
        return 0
    with MirrorServer(mirror.root) as server:
        print(f"serving {mirror.root} at {server.url}", flush=True)
        try:
            time.sleep(args.seconds) if args.seconds else _forever()
        except KeyboardInterrupt:
            pass
    return 0


def _forever() -> None:
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
