"""The Go toolchain as the mirror build uses it: find it, run it, and turn its failures into one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tests.mirror.errors import MirrorBuildError

# Where the project's machines have Go when it is not on PATH.
FALLBACK_GO = Path("/usr/local/go/bin/go")
# A build killed by the kernel's OOM killer, as `go build` reports it.
KILLED = ("signal: killed", "fatal error: runtime: out of memory", "cannot allocate memory")


@dataclass(frozen=True)
class GoTool:
    """One Go installation; `version` is part of every build's cache key."""

    path: Path

    @classmethod
    def find(cls) -> GoTool:
        found = shutil.which("go")
        path = Path(found) if found else FALLBACK_GO
        if not path.is_file():
            raise MirrorBuildError(
                "Go is not installed (no `go` on PATH, none at /usr/local/go/bin/go): the test mirror builds "
                "Kubernetes, etcd, containerd, runc, the CNI plugins, crictl and CoreDNS from their Go modules; "
                "install Go 1.26 or newer at /usr/local/go and run again")
        return cls(path)

    @cached_property
    def version(self) -> str:
        """`go1.26.8`: what `go env GOVERSION` says, with GOTOOLCHAIN as the caller set it."""
        return self.run(["env", "GOVERSION"], what="go env GOVERSION").stdout.strip()

    def env(self, *, cgo: bool = False, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "CGO_ENABLED": "1" if cgo else "0",
            "GOOS": "linux",
            "GOARCH": "amd64",
            # Never fetch another toolchain behind the caller's back (a go.mod `toolchain` line would);
            # a caller who needs one says so with GOTOOLCHAIN=go1.27.3, which is then kept.
            "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"),
            "GOFLAGS": "-mod=mod -buildvcs=false",
        })
        env.update(extra or {})
        return env

    def run(self, args: list[str], *, what: str, cwd: Path | None = None, cgo: bool = False,
            env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run `go ARGS`; a failure raises MirrorBuildError naming `what` and the reason (the log keeps the rest)."""
        command = [str(self.path), *args]
        try:
            result = subprocess.run(command, cwd=cwd, env=self.env(cgo=cgo, extra=env), capture_output=True,
                                    text=True, check=False)
        except OSError as exc:
            raise MirrorBuildError(f"{what}: cannot run {self.path}: {exc}") from None
        if log is not None:
            with log.open("a") as out:
                out.write(f"$ (cd {cwd or '.'} && go {' '.join(args)})\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            raise MirrorBuildError(f"{what} failed: {explain(result.stderr)}"
                                   + (f" (full output: {log})" if log else ""))
        return result

    def download(self, module: str, version: str, *, log: Path | None = None) -> dict[str, str]:
        """`go mod download -json M@V`: where the module's files and go.mod are in the module cache."""
        result = self.run(["mod", "download", "-json", f"{module}@{version}"], what=f"downloading {module}@{version}",
                          cwd=Path("/"), log=log)
        info = json.loads(result.stdout)
        if info.get("Error"):
            raise MirrorBuildError(f"downloading {module}@{version} failed: {explain(info['Error'])}")
        return info

    def read_gomod(self, path: Path) -> dict:
        """A go.mod as data (`go mod edit -json`): Module, Go, GoDebug, Require, Replace."""
        result = self.run(["mod", "edit", "-json", str(path)], what=f"reading {path}")
        return json.loads(result.stdout)


def explain(stderr: str) -> str:
    """The one line of go's output that says what went wrong, with what to do about the usual causes."""
    text = stderr.strip()
    lowered = text.lower()
    if any(sign in lowered for sign in KILLED):
        return ("the compiler was killed, most likely out of memory: free memory or build with fewer "
                f"parallel jobs (GOFLAGS=-p=1); go said: {_last_line(text)}")
    if "410 gone" in lowered or "404 not found" in lowered or "unknown revision" in lowered \
            or "invalid version" in lowered or "no matching versions" in lowered:
        return f"the Go module proxy does not serve it ({_last_line(text)}); pick a version it lists"
    if "dial tcp" in lowered or "no such host" in lowered or "connection refused" in lowered:
        return f"the Go module proxy cannot be reached ({_last_line(text)}); check GOPROXY and the network"
    if "requires go >=" in lowered or "toolchain" in lowered and "not available" in lowered:
        return f"{_last_line(text)}; set GOTOOLCHAIN=go1.27.3 (served by the module proxy) and run again"
    return _last_line(text) or "no error output"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or line.startswith("go:")]
    return (errors or lines or [""])[-1]
