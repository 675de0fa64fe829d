"""Wrapper modules for Go modules that `go install M@V` refuses because their go.mod has relative replaces.

k8s.io/kubernetes replaces every `k8s.io/<staging>` module with `./staging/src/k8s.io/<staging>`
and requires it at v0.0.0; etcd's server, etcdctl and etcdutl modules replace their siblings with
`../api`, `../client/v3` and so on. Inside the repository those paths exist; from the module proxy
they do not, so `go install` refuses such a module. A wrapper module requires it instead and maps
each relatively replaced module to its published version: the version the upstream go.mod
requires when that is a real one (etcd), else the staging version that goes with the main
module's (k8s.io/kubernetes v1.37.2 -> k8s.io/api v0.37.2). Everything is read from the served
go.mod, so a new release needs no list edited here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.mirror.errors import MirrorBuildError
from tests.mirror.gotool import GoTool

PLACEHOLDER = "v0.0.0"


@dataclass(frozen=True)
class Replacement:
    module: str
    version: str


def staging_version(main_version: str) -> str:
    """v1.37.2 -> v0.37.2: the published version of a Kubernetes staging module."""
    major, _, rest = main_version.removeprefix("v").partition(".")
    if major != "1" or not rest:
        raise MirrorBuildError(f"{main_version} is not a Kubernetes v1.x.y version")
    return f"v0.{rest}"


def relative_replacements(gomod: dict, main_version: str) -> list[Replacement]:
    """Every module this go.mod requires and replaces with a directory, mapped to its published version."""
    required = {r["Path"]: r["Version"] for r in gomod.get("Require") or []}
    found = []
    for replace in gomod.get("Replace") or []:
        old, new = replace["Old"]["Path"], replace["New"]["Path"]
        if not new.startswith(("./", "../")) or old not in required:
            continue  # a non-local replace works through the proxy; one for a module not required is unused
        version = required[old]
        found.append(Replacement(old, version if version != PLACEHOLDER else staging_version(main_version)))
    return found


def wrapper_gomod(name: str, requires: Iterable[tuple[str, str]], replacements: Iterable[Replacement],
                  *, go: str, godebug: Iterable[tuple[str, str]] = ()) -> str:
    """The text of a wrapper's go.mod."""
    lines = [f"module {name}", "", f"go {go}", ""]
    debug = sorted(set(godebug))
    if debug:
        lines += [f"godebug {key}={value}" for key, value in debug] + [""]
    lines += ["require ("] + [f"\t{path} {version}" for path, version in sorted(set(requires))] + [")", ""]
    replaced = {r.module: r.version for r in replacements}
    if replaced:
        lines += ["replace ("] + [f"\t{module} => {module} {version}" for module, version in sorted(replaced.items())]
        lines += [")", ""]
    return "\n".join(lines)


def tools_go(packages: Iterable[str]) -> str:
    """A file that imports the packages to build, so `go mod tidy` keeps what they need."""
    imports = "\n".join(f'\t_ "{p}"' for p in sorted(set(packages)))
    return f"//go:build tools\n\n// The packages this wrapper builds.\npackage tools\n\nimport (\n{imports}\n)\n"


def write_wrapper(go: GoTool, directory: Path, modules: Iterable[tuple[str, str]], packages: Iterable[str],
                  *, log: Path) -> None:
    """Make `directory` a module that builds `packages` of `modules` (module, version) as upstream pins them."""
    modules = list(modules)
    replacements: list[Replacement] = []
    godebug: list[tuple[str, str]] = []
    go_version = "1.22"
    for module, version in modules:
        info = go.download(module, version, log=log)
        gomod = go.read_gomod(Path(info["GoMod"]))
        replacements += relative_replacements(gomod, version)
        godebug += [(d["Key"], d["Value"]) for d in gomod.get("GoDebug") or []]
        go_version = max(go_version, gomod.get("Go") or go_version, key=_go_key)
    by_module: dict[str, set[str]] = {}
    for r in replacements:
        by_module.setdefault(r.module, set()).add(r.version)
    clashes = sorted(m for m, versions in by_module.items() if len(versions) > 1)
    if clashes:
        raise MirrorBuildError(f"the modules {', '.join(m for m, _ in modules)} disagree on the versions of "
                               f"{', '.join(clashes)}: build them in separate wrappers")
    directory.mkdir(parents=True, exist_ok=True)
    name = "kbuild.test/build/" + modules[0][0].replace("/", "-")
    (directory / "go.mod").write_text(wrapper_gomod(name, modules, replacements, go=go_version, godebug=godebug))
    (directory / "tools.go").write_text(tools_go(packages))
    go.run(["mod", "tidy"], what=f"resolving the dependencies of {', '.join(f'{m}@{v}' for m, v in modules)}",
           cwd=directory, log=log)


def _go_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())
