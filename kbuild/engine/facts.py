"""Facts: what a host currently has. Each fact is a shell snippet plus a parser of its output.

All facts of one host are gathered by a single remote script (see runner.py), so every snippet
here is a call to a small shell function defined once in FACT_FUNCTIONS. Output is plain
`key value` lines, parsed without guessing; tests feed recorded output to the parsers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from kbuild.engine.shell import word

# Shell functions shared by every fact snippet. POSIX sh only: hosts may have dash as /bin/sh.
# kb_sum prints a file's sha256, trusting a stamp written at upload time when the file's size and
# mtime still match it: hashing every large binary on every no-op run would cost seconds.
FACT_FUNCTIONS = r"""
kb_stamp() { printf '%s/%s' "${KB_STAMPS:-/var/lib/kbuild/sums}" "$(printf '%s' "$1" | tr '/' '_')"; }
kb_sum() {
  st=$(kb_stamp "$1"); now=$(stat -c '%s %Y' "$1")
  if [ -f "$st" ] && [ "$(sed -n 2p "$st")" = "$now" ]; then sed -n 1p "$st"
  else sha256sum "$1" | cut -c1-64; fi
}
kb_path() {
  if [ -L "$1" ]; then echo "type link"
  elif [ -f "$1" ]; then echo "type file"; stat -c 'stat %a %U %G %s' "$1"; echo "sha256 $(kb_sum "$1")"
    if [ "$2" = content ]; then printf 'content '; base64 "$1" | tr -d '\n'; echo; fi
  elif [ -d "$1" ]; then echo "type directory"; stat -c 'stat %a %U %G %s' "$1"
  elif [ -e "$1" ]; then echo "type other"
  else echo "type absent"; fi
}
kb_artifact() {
  kb_path "$1"; st=$(kb_stamp "$1")
  if [ -f "$st" ]; then printf 'stamped %s\n' "$(sed -n 1p "$st")"; printf 'source %s\n' "$(sed -n 3p "$st")"; fi
}
kb_service() {
  printf 'enabled %s\n' "$(systemctl is-enabled "$1" 2>/dev/null || true)"
  printf 'active %s\n' "$(systemctl is-active "$1" 2>/dev/null || true)"
  printf 'unit %s\n' "$(systemctl show -p LoadState --value "$1" 2>/dev/null || true)"
}
kb_sysctl() {
  f="/proc/sys/$(printf '%s' "$1" | tr '.' '/')"
  if [ -r "$f" ]; then printf 'value %s\n' "$(tr '\t' ' ' < "$f")"; else echo "value -"; fi
  if [ -f "$2" ]; then printf 'persisted %s\n' "$(sed -n 's/^[^=]*= *//p' "$2" | head -n1)"; fi
}
kb_module() {
  if [ -d "/sys/module/$1" ] || { [ -n "$2" ] && sh -c "$2" >/dev/null 2>&1; } || grep -q "^$1 " /proc/modules 2>/dev/null
  then echo "loaded yes"; else echo "loaded no"; fi
  if [ -f "$3" ]; then echo "persisted yes"; else echo "persisted no"; fi
}
kb_test() { if sh -c "$1" >/dev/null 2>&1; then echo "ok yes"; else echo "ok no"; fi; }
"""


# One quoting rule for every generated command (kbuild.engine.shell); `q` is its short name here.
q = word


def _pairs(output: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        if key:
            pairs[key] = value
    return pairs


@dataclass(frozen=True)
class PathFact:
    """A path on the host: its type and, for files and directories, mode, owner, group and size."""

    type: str  # file | directory | link | other | absent
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    size: int | None = None
    sha256: str | None = None
    content: bytes | None = None  # only when asked for (--diff)

    @staticmethod
    def command(path: str, *, with_content: bool = False) -> str:
        return f"kb_path {q(path)}{' content' if with_content else ''}"

    @classmethod
    def parse(cls, output: str) -> PathFact:
        pairs = _pairs(output)
        kind = pairs.get("type", "absent")
        mode = owner = group = size = None
        if "stat" in pairs:
            mode_text, owner, group, size_text = pairs["stat"].split()
            mode, size = int(mode_text, 8), int(size_text)
        content = base64.b64decode(pairs["content"]) if "content" in pairs else None
        return cls(kind, mode, owner, group, size, pairs.get("sha256") or None, content)


@dataclass(frozen=True)
class ArtifactFact:
    """A file kbuild installed from an artifact, with the stamp recorded when it was installed."""

    path: PathFact
    stamped_sha256: str | None  # what kbuild wrote; differs from path.sha256 if someone changed the file
    source: str | None  # where it came from (for files pulled from an archive by the host)

    @staticmethod
    def command(path: str) -> str:
        return f"kb_artifact {q(path)}"

    @classmethod
    def parse(cls, output: str) -> ArtifactFact:
        pairs = _pairs(output)
        return cls(PathFact.parse(output), pairs.get("stamped") or None, pairs.get("source") or None)


@dataclass(frozen=True)
class ServiceFact:
    enabled: str  # enabled | disabled | static | masked | not-found | ""
    active: str  # active | inactive | failed | activating | ...
    load_state: str  # loaded | not-found | masked

    @staticmethod
    def command(name: str) -> str:
        return f"kb_service {q(name)}"

    @classmethod
    def parse(cls, output: str) -> ServiceFact:
        pairs = _pairs(output)
        return cls(pairs.get("enabled", ""), pairs.get("active", ""), pairs.get("unit", ""))

    @property
    def running(self) -> bool:
        return self.active in ("active", "reloading", "activating")

    @property
    def is_enabled(self) -> bool:
        return self.enabled in ("enabled", "enabled-runtime", "static", "alias")


@dataclass(frozen=True)
class SysctlFact:
    value: str | None  # None: the key does not exist on this kernel/namespace
    persisted: str | None

    @staticmethod
    def command(key: str, persist_file: str) -> str:
        return f"kb_sysctl {q(key)} {q(persist_file)}"

    @classmethod
    def parse(cls, output: str) -> SysctlFact:
        pairs = _pairs(output)
        value = pairs.get("value", "-")
        return cls(None if value == "-" else value.strip(), pairs.get("persisted"))


@dataclass(frozen=True)
class ModuleFact:
    loaded: bool
    persisted: bool

    @staticmethod
    def command(name: str, probe: str | None, persist_file: str) -> str:
        return f"kb_module {q(name)} {q(probe or '')} {q(persist_file)}"

    @classmethod
    def parse(cls, output: str) -> ModuleFact:
        pairs = _pairs(output)
        return cls(pairs.get("loaded") == "yes", pairs.get("persisted") == "yes")


@dataclass(frozen=True)
class GuardFact:
    """Whether a read-only shell test (a guard such as `test -e X`) succeeds on the host."""

    ok: bool

    @staticmethod
    def command(test: str) -> str:
        return f"kb_test {q(test)}"

    @classmethod
    def parse(cls, output: str) -> GuardFact:
        return cls(_pairs(output).get("ok") == "yes")
