"""Binaries built from published Go modules, cached per machine by module, version, Go version and flags.

A GoBuild names the modules (all at one version), the packages to build and how (cgo, tags,
ldflags). Modules without relative replaces are built exactly as `go install M@V` would;
others (k8s.io/kubernetes, etcd's server/etcdctl/etcdutl) through a wrapper module derived from
their served go.mod (tests.mirror.gomod). Every build happens in a temporary directory and is
renamed into the cache only when complete, so a failed or killed build is never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.mirror.errors import MirrorBuildError
from tests.mirror.gomod import relative_replacements, write_wrapper
from tests.mirror.gotool import GoTool

Log = Callable[[str], None]
# Bump when the way a build is done changes in a way its inputs do not show.
RECIPE = 1


@dataclass(frozen=True)
class Stamp:
    """What a version stamp may use: the release's version and its publication time (from the proxy)."""

    version: str  # v1.37.2
    time: str  # 2026-10-27T12:01:04Z

    @property
    def bare(self) -> str:
        return self.version.removeprefix("v")

    @property
    def major(self) -> str:
        return self.bare.split(".")[0]

    @property
    def minor(self) -> str:
        return self.bare.split(".")[1]


@dataclass(frozen=True)
class GoBuild:
    """Binaries from modules published at one version."""

    name: str  # for messages and the cache directory: "kubernetes", "etcd", "runc"
    version: str  # v1.37.2
    modules: tuple[str, ...]  # the first is the main one; all at `version`
    binaries: Mapping[str, str]  # output file name -> package path
    cgo: bool = False
    tags: tuple[str, ...] = ()
    # -X settings for the version stamp, from the release (its version, its time).
    stamp: Callable[[Stamp], Mapping[str, str]] = field(default=lambda _: {}, compare=False)
    static: bool = False  # cgo binaries linked statically, as upstream ships them
    test: bool = False  # each package's test binary (`go test -c`: upstream's e2e.test), not its command

    def ldflags(self, stamp: Stamp) -> str:
        flags = ["-s", "-w", *(f"-X {k}={v}" for k, v in sorted(self.stamp(stamp).items()))]
        if self.static:
            flags.append("-extldflags=-static")
        return " ".join(flags)

    def key(self, go_version: str, stamp: Stamp) -> str:
        blob = json.dumps({"recipe": RECIPE, "go": go_version, "modules": self.modules, "version": self.version,
                           "binaries": dict(self.binaries), "cgo": self.cgo, "tags": self.tags,
                           "ldflags": self.ldflags(stamp), **({"test": True} if self.test else {})}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Built:
    """A finished build in the cache: its binaries by output name."""

    build: GoBuild
    directory: Path
    key: str
    seconds: float  # how long it took when it was made (0 for none recorded)

    def binary(self, name: str) -> Path:
        return self.directory / "bin" / name


class BuildCache:
    """<root>/<name>-<version>-<key>/ per build: bin/, BUILD.json, build.log."""

    def __init__(self, root: Path, go: GoTool, log: Log) -> None:
        self.root = root
        self.go = go
        self.log = log

    def stamp(self, build: GoBuild) -> Stamp:
        info = self.go.download(build.modules[0], build.version)
        published = json.loads(Path(info["Info"]).read_text()).get("Time", "")
        return Stamp(build.version, published)

    def ensure(self, build: GoBuild) -> Built:
        """The cached build, made first if it is not there (serialised per build by a lock file)."""
        stamp = self.stamp(build)
        key = build.key(self.go.version, stamp)
        target = self.root / f"{build.name}-{build.version}-{key}"
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / f".{build.name}-{build.version}.lock"):
            if (target / "BUILD.json").is_file():
                return Built(build, target, key, json.loads((target / "BUILD.json").read_text()).get("seconds", 0))
            work = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{target.name}."))
            try:
                seconds = self._build(build, stamp, work)
                (work / "BUILD.json").write_text(json.dumps({
                    "name": build.name, "version": build.version, "modules": build.modules, "go": self.go.version,
                    "binaries": dict(build.binaries), "ldflags": build.ldflags(stamp), "seconds": round(seconds, 1),
                }, indent=2, sort_keys=True))
                os.replace(work, target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            return Built(build, target, key, seconds)

    def _build(self, build: GoBuild, stamp: Stamp, work: Path) -> float:
        started = time.monotonic()
        log = work / "build.log"
        bin_dir = work / "bin"
        bin_dir.mkdir()
        what = f"{build.name} {build.version} ({', '.join(build.modules)})"
        self.log(f"building {what} with {self.go.version}: {', '.join(build.binaries)}")
        flags = ["-trimpath", "-ldflags", build.ldflags(stamp)]
        if build.tags:
            flags += ["-tags", ",".join(build.tags)]
        if self._needs_wrapper(build, log):
            module_dir = work / "module"
            write_wrapper(self.go, module_dir, [(m, build.version) for m in build.modules], build.binaries.values(),
                          log=log)
            # One `go build` for every package whose command name is its own (shared packages compile once,
            # in parallel); the others (etcd's three are all .../v3) and test binaries one by one.
            together = [] if build.test else [p for n, p in build.binaries.items() if p.rsplit("/", 1)[-1] == n]
            if together:
                self.go.run(["build", *flags, "-o", f"{bin_dir}/", *together], cgo=build.cgo, cwd=module_dir,
                            what=f"go build of {what}", log=log)
            verb = ["test", "-c"] if build.test else ["build"]
            for name, package in build.binaries.items():
                if package not in together:
                    self.go.run([*verb, *flags, "-o", str(bin_dir / name), package], cgo=build.cgo,
                                cwd=module_dir, what=f"go {' '.join(verb)} of {package}@{build.version}", log=log)
        elif build.test:
            raise MirrorBuildError(f"{build.name}: a test binary is built in a wrapper module; "
                                   f"{build.modules[0]} needs none, so `go test -c` has no module to run in")
        else:
            installed = work / "gobin"
            packages = [f"{p}@{build.version}" for p in build.binaries.values()]
            self.go.run(["install", *flags, *packages], cgo=build.cgo, cwd=work, env={"GOBIN": str(installed)},
                        what=f"go install of {what}", log=log)
            for name, package in build.binaries.items():
                os.replace(installed / package.rsplit("/", 1)[-1], bin_dir / name)
        seconds = time.monotonic() - started
        self.log(f"built {what} in {seconds:.0f} s")
        return seconds

    def _needs_wrapper(self, build: GoBuild, log: Path) -> bool:
        """True when a module's go.mod replaces a required module with a directory (`go install` refuses it)."""
        for module in build.modules:
            info = self.go.download(module, build.version, log=log)
            if relative_replacements(self.go.read_gomod(Path(info["GoMod"])), build.version):
                return True
        if len(build.modules) > 1:
            raise MirrorBuildError(f"{build.name}: several modules without relative replaces: build each on its own")
        return False


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (made if missing) while the block runs: one builder per cache entry."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
