"""Regenerate kbuild/render/flagdata/ from the real binaries' `--help`: `python -m tests.mirror flags`.

For every minor kbuild supports (kbuild.releases) the newest patch the Go module proxy serves is
built (through the same cache as the mirror; the mirror's own releases cost nothing more), each
component is run with --help, and its flags are written as `--NAME TYPE` lines. Three help
formats occur: pflag's (the kube components), Go's flag package as etcd prints it, and urfave/cli's
(containerd).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from kbuild.releases import ETCD, KUBERNETES, Minor, show
from kbuild.render.flagdata import format_flags
from tests.mirror import releases
from tests.mirror.errors import MirrorBuildError
from tests.mirror.gobuild import BuildCache, GoBuild
from tests.mirror.gotool import GoTool

FLAGDATA = Path(__file__).resolve().parents[2] / "kbuild" / "render" / "flagdata"
KUBE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")

# pflag: "  -v, --v Level    text" or "      --anonymous-auth     text" (no type: a bool switch).
_PFLAG = re.compile(r"^\s+(?:-\w, )?--(?P<name>[A-Za-z0-9][\w.-]*)(?: (?P<type>[A-Za-z][\w.]*))?(?:\s{2,}|$)")
# etcd: "  --name 'default'" (the default follows; booleans show true or false).
_ETCD = re.compile(r"^\s+--(?P<name>[a-z0-9][\w.-]*)(?:\s+(?P<default>\S.*))?$")
# urfave/cli: "   --config string, -c string  Path to ..." (v3; v1 says "value") or "   --help, -h  Show help".
_URFAVE = re.compile(r"^\s+--(?P<name>[a-z0-9][\w-]*)(?P<value> (?!-)[a-z]\w*)?(?:,|\s{2,}|$)")


def pflag_flags(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        match = _PFLAG.match(line)
        if match:
            found[match["name"]] = match["type"] or "bool"
    return found


def etcd_flags(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        match = _ETCD.match(line)
        if match:
            default = (match["default"] or "").strip("'")
            found[match["name"]] = "bool" if default in ("true", "false") else "string"
    return found


def urfave_flags(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        match = _URFAVE.match(line)
        if match:
            found[match["name"]] = match["value"].strip() if match["value"] else "bool"
    return found


def help_text(binary: Path) -> str:
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False)
    # pflag prints usage to stdout with exit 0; etcd prints to stderr; either way both streams hold it.
    return result.stdout + result.stderr


def newest_patch(go: GoTool, module: str, minor: Minor) -> str:
    listed = go.run(["list", "-m", "-versions", module], what=f"listing the versions of {module}", cwd=Path("/"))
    prefix = f"v{show(minor)}."
    patches = [v for v in listed.stdout.split()[1:] if v.startswith(prefix) and re.fullmatch(r"v\d+\.\d+\.\d+", v)]
    if not patches:
        raise MirrorBuildError(f"the Go module proxy serves no {module} {show(minor)}.x release")
    return max(patches, key=lambda v: tuple(int(p) for p in v[1:].split("."))).removeprefix("v")


def generate(cache: BuildCache, go: GoTool, out: Path = FLAGDATA, log: Callable[[str], None] = print) -> list[Path]:
    written = []

    def write(component: str, minor: Minor, flags: dict[str, str], source: str) -> None:
        if not flags:
            raise MirrorBuildError(f"{source}: --help listed no flags; the help format changed")
        path = out / component / f"{show(minor)}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(format_flags(flags, source))
        written.append(path)

    for minor in KUBERNETES:
        version = newest_patch(go, "k8s.io/kubernetes", minor)
        built = cache.ensure(releases.kubernetes(version))
        for component in KUBE_COMPONENTS:
            write(component, minor, pflag_flags(help_text(built.binary(component))), f"{component} v{version} --help")
    for minor in ETCD:
        version = newest_patch(go, "go.etcd.io/etcd/server/v3", minor)
        built = cache.ensure(releases.etcd(version))
        write("etcd", minor, etcd_flags(help_text(built.binary("etcd"))), f"etcd v{version} --help")
    containerd: GoBuild = releases.containerd(releases.DEFAULTS.containerd)
    built = cache.ensure(containerd)
    minor = tuple(int(p) for p in releases.DEFAULTS.containerd.split(".")[:2])
    write("containerd", minor, urfave_flags(help_text(built.binary("containerd"))),  # type: ignore[arg-type]
          f"containerd v{releases.DEFAULTS.containerd} --help")
    for path in written:
        log(f"wrote {path}")
    return written
