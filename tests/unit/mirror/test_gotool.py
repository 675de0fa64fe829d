"""The mirror build's bad input: no Go, a version the proxy refuses, a compiler killed for memory, each one
clear line; a failed build leaves nothing in the cache. Go itself is a shell script here that answers as
the real one does for what it is asked."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.mirror import gotool
from tests.mirror.errors import MirrorBuildError
from tests.mirror.gobuild import BuildCache, GoBuild
from tests.mirror.gotool import GoTool


def fake_go(tmp_path: Path, failure: str) -> GoTool:
    """A `go` that reports its version and serves one module, and fails every build with `failure`."""
    info, gomod = tmp_path / "v.info", tmp_path / "go.mod"
    info.write_text(json.dumps({"Version": "v1.0.0", "Time": "2026-01-01T00:00:00Z"}))
    gomod.write_text("module example.com/tool\n")
    script = tmp_path / "go"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$1 $2" in
          "env GOVERSION") echo go1.26.0 ;;
          "mod download") echo '{{"Info": "{info}", "GoMod": "{gomod}"}}' ;;
          "mod edit") echo '{{"Module": {{"Path": "example.com/tool"}}}}' ;;
          *) printf '%s\\n' {json.dumps(failure)} >&2; exit 1 ;;
        esac
        """))
    script.chmod(0o755)
    return GoTool(script)


def test_no_go_anywhere_says_where_it_looked_and_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(gotool, "FALLBACK_GO", tmp_path / "no-go-here")
    with pytest.raises(MirrorBuildError, match=r"Go is not installed .*install Go 1\.26 or newer at /usr/local/go"):
        GoTool.find()


@pytest.mark.parametrize("stderr, reason", [
    ("go: example.com/tool@v9.9.9: reading https://proxy.golang.org/example.com/tool/@v/v9.9.9.info: 410 Gone",
     "the Go module proxy does not serve it"),
    ("fatal error: runtime: out of memory", "the compiler was killed, most likely out of memory"),
    ("dial tcp 127.0.0.1:9: connect: connection refused", "the Go module proxy cannot be reached"),
])
def test_a_failed_go_command_is_one_line_naming_what_and_why(tmp_path, stderr, reason):
    go = fake_go(tmp_path, stderr)
    with pytest.raises(MirrorBuildError) as info:
        go.run(["build", "./..."], what="go build of tool v1.0.0")
    message = str(info.value)
    assert message.startswith("go build of tool v1.0.0 failed: " + reason) and "\n" not in message


def test_a_build_that_fails_leaves_nothing_in_the_cache(tmp_path):
    go = fake_go(tmp_path, "signal: killed")
    cache = BuildCache(tmp_path / "builds", go, log=lambda line: None)
    build = GoBuild("tool", "v1.0.0", ("example.com/tool",), {"tool": "example.com/tool"})
    with pytest.raises(MirrorBuildError, match=r"go install of tool v1\.0\.0 .*failed: the compiler was killed"):
        cache.ensure(build)
    # No finished build and no half-built directory: only the lock file is there.
    assert [p.name for p in (tmp_path / "builds").iterdir()] == [".tool-v1.0.0.lock"]
