"""`python -m tests.mirror build [--force] [--conformance]`: build (or find) the cached test mirror and print its
path (with --conformance: also upstream's conformance tests and their images, and print that directory).

Also `serve` (the mirror on 127.0.0.1), `tool NAME` (the path of its kubectl, etcdctl, ...) and `flags` (regenerate kbuild/render/flagdata from the real binaries).
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.mirror import flags
from tests.mirror.builder import cache_root, ensure_mirror
from tests.mirror.conformance import ensure_conformance
from tests.mirror.gobuild import BuildCache
from tests.mirror.gotool import GoTool
from tests.mirror.errors import MirrorBuildError
from tests.mirror.server import MirrorServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mirror", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the mirror unless a build for the current inputs exists")
    build.add_argument("--force", action="store_true", help="rebuild even if it exists")
    build.add_argument("--conformance", action="store_true",
                       help="also e2e.test, ginkgo and the e2e images (opt-in: e2e.test takes minutes to compile)")
    serve = commands.add_parser("serve", help="serve the mirror on 127.0.0.1 until interrupted")
    serve.add_argument("--seconds", type=float, default=None, help="stop after this long")
    commands.add_parser("flags", help="regenerate kbuild/render/flagdata from each supported minor's --help")
    tool = commands.add_parser("tool", help="print the path of a client binary built for the mirror")
    tool.add_argument("name", choices=("kubectl", "etcdctl", "etcdutl", "crictl"))
    commands.add_parser("test-image", help="print the reference of the busybox test image in the mirror")
    args = parser.parse_args(argv)

    try:
        if args.command == "flags":
            go = GoTool.find()
            flags.generate(BuildCache(cache_root() / "builds", go, _log), go)
            return 0
        mirror = ensure_mirror(force=getattr(args, "force", False))
        if args.command == "build" and args.conformance:
            print(ensure_conformance(mirror, root=cache_root(), log=_log).root)
            return 0
    except MirrorBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "build":
        print(mirror.root)
        return 0
    if args.command == "tool":
        print(mirror.tool(args.name))
        return 0
    if args.command == "test-image":
        print(mirror.test_image)
        return 0
    with MirrorServer(mirror.root) as server:
        print(f"serving {mirror.root} at {server.url}", flush=True)
        try:
            time.sleep(args.seconds) if args.seconds else _forever()
        except KeyboardInterrupt:
            pass
    return 0


def _log(line: str) -> None:
    print(line, file=sys.stderr)


def _forever() -> None:
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
