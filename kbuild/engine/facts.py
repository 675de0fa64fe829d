"""Facts: what a host currently has. Each resource asks one query; all queries of a kind are answered together.

A no-op run costs a host the processes its fact script starts, so a kind of query is answered by a
fixed handful of processes however many resources ask: every path of the host by one `stat` and one
`sha256sum` (of the plain files, and of the artifacts whose upload stamp no longer matches: a binary is
not hashed again on every run), services by one `systemctl show`,
routes by one `ip route show` per address family, sysctls, kernel modules and `creates` guards by
shell builtins alone. The output never carries a file name except
sha256sum's (which escapes newlines), so hostile names (newlines, spaces, quotes) cannot shift a
parse; it is read by position, in the order the controller asked. Tests feed recorded output to the
parsers and run the generated script with a shell.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

from kbuild.engine.shell import command, word

# Stamps written at upload time: sha256, then "size mtime", then provenance. While size and mtime
# still match, the sha256 is trusted instead of hashing every large binary on every no-op run.
STAMP_DIR = "${KB_STAMPS:-/var/lib/kbuild/sums}"

# Shell functions for fact and apply scripts. POSIX sh only (hosts may have dash as /bin/sh), and
# builtins wherever a loop runs per item: a process start per file is what made no-op runs costly.
FACT_FUNCTIONS = r"""
kb_stamp() { printf '%s/%s' "${KB_STAMPS:-/var/lib/kbuild/sums}" "$(printf '%s' "$1" | tr '/' '_')"; }
kb_sum() {
  st=$(kb_stamp "$1"); now=$(stat -c '%s %Y' "$1")
  if [ -f "$st" ] && [ "$(sed -n 2p "$st")" = "$now" ]; then sed -n 1p "$st"
  else sha256sum "$1" | cut -c1-64; fi
}
kb_stamp_name() {
  kb_r=; kb_s=$1
  while :; do case $kb_s in */*) kb_r="$kb_r${kb_s%%/*}_"; kb_s=${kb_s#*/};; *) kb_r="$kb_r$kb_s"; return;; esac; done
}
kb_paths() {
  kb_f=$1; shift; kb_n=$#; kb_i=0; kb_pf=
  echo "$KB_M path.types"
  while [ "$kb_i" -lt "$kb_n" ]; do
    kb_p=$1; shift; kb_i=$((kb_i + 1)); kb_k=${kb_f%"${kb_f#?}"}; kb_f=${kb_f#?}
    if [ -L "$kb_p" ]; then echo link
    elif [ -f "$kb_p" ]; then echo file; set -- "$@" "$kb_p"; kb_pf=$kb_pf$kb_k
    elif [ -d "$kb_p" ]; then echo directory; set -- "$@" "$kb_p"; kb_pf=$kb_pf$kb_k
    elif [ -e "$kb_p" ]; then echo other
    else echo absent; fi
  done
  [ "$#" -gt 0 ] || return 0
  echo "$KB_M path.stat"
  kb_stats=$(stat -c '%s %Y %f %U %G' -- "$@") || { echo "$KB_M path.race"; return 0; }
  printf '%s\n' "$kb_stats"
  echo "$KB_M path.stamps"
  kb_n=$#; kb_i=0; kb_nl='
'; kb_rest="$kb_stats$kb_nl"
  while [ "$kb_i" -lt "$kb_n" ] && [ -n "$kb_rest" ]; do
    kb_p=$1; shift; kb_i=$((kb_i + 1)); kb_k=${kb_pf%"${kb_pf#?}"}; kb_pf=${kb_pf#?}
    kb_l=${kb_rest%%"$kb_nl"*}; kb_rest=${kb_rest#*"$kb_nl"}
    kb_size=${kb_l%% *}; kb_l=${kb_l#* }; kb_mtime=${kb_l%% *}; kb_l=${kb_l#* }; kb_raw=${kb_l%% *}
    [ $((0x$kb_raw & 61440)) -eq 32768 ] || continue
    if [ "$kb_k" != a ]; then set -- "$@" "$kb_p"; continue; fi
    kb_stamp_name "$kb_p"; kb_st="${KB_STAMPS:-/var/lib/kbuild/sums}/$kb_r"; kb_s1=; kb_s2=; kb_s3=
    if [ -f "$kb_st" ]; then
      { IFS= read -r kb_s1; IFS= read -r kb_s2; IFS= read -r kb_s3; } < "$kb_st"
      if [ "$kb_s2" = "$kb_size $kb_mtime" ]; then echo fresh; else echo stale; set -- "$@" "$kb_p"; fi
    else echo none; set -- "$@" "$kb_p"; fi
    printf '%s\n%s\n' "$kb_s1" "$kb_s3"
  done
  [ "$#" -gt 0 ] || return 0
  echo "$KB_M path.sums"
  sha256sum -- "$@" || echo "$KB_M path.race"
}
kb_contents() {
  kb_n=$#; kb_i=0
  while [ "$kb_i" -lt "$kb_n" ]; do
    kb_p=$1; shift; kb_i=$((kb_i + 1))
    if [ -f "$kb_p" ] && [ ! -L "$kb_p" ]; then set -- "$@" "$kb_p"; fi
  done
  echo "$KB_M path.content"
  [ "$#" -eq 0 ] || cat -- "$@" | base64 | tr -d '\n'; echo
}
kb_persisted() {
  kb_l=; kb_p=-
  if [ -f "$1" ]; then
    while IFS= read -r kb_l || [ -n "$kb_l" ]; do case $kb_l in *=*) kb_p="p${kb_l#*=}"; break;; esac; done < "$1"
  fi
  printf '%s\n' "$kb_p"
}
kb_listed() {
  [ -r /proc/modules ] || return 1
  while read -r kb_m kb_l; do [ "$kb_m" = "$1" ] && return 0; done < /proc/modules; return 1
}
kb_module() {
  if [ -d "/sys/module/$1" ] || { [ -n "$2" ] && ( eval "$2" ) </dev/null >/dev/null 2>&1; } || kb_listed "$1"
  then echo yes; else echo no; fi
  if [ -f "$3" ]; then echo yes; else echo no; fi
}
kb_test() { if ( eval "$1" ) </dev/null >/dev/null 2>&1; then echo yes; else echo no; fi; }
kb_exists() { if [ -e "$1" ]; then echo yes; else echo no; fi; }
"""


# One quoting rule for every generated command (kbuild.engine.shell); `q` is its short name here.
q = word


class FactError(Exception):
    """The host's answer cannot be read: cut short, or the host changed while it was asked."""


Sections = dict[str, list[str]]  # the fact script's output: section name -> its lines


def _section(sections: Sections, name: str, count: int) -> list[str]:
    lines = sections.get(name, [])
    if len(lines) < count:
        raise FactError(f"the {name} facts came back with {len(lines)} of {count} lines; output was cut short")
    return lines


class FactQuery:
    """One resource's question. Subclasses answer all queries of their class in one batch."""

    kind: ClassVar[str]

    @classmethod
    def batch_script(cls, queries: Sequence[Any]) -> str:
        raise NotImplementedError

    @classmethod
    def batch_parse(cls, sections: Sections, queries: Sequence[Any]) -> list[Any]:
        raise NotImplementedError


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


@dataclass(frozen=True)
class ArtifactFact:
    """A file kbuild installed from an artifact, with the stamp recorded when it was installed."""

    path: PathFact
    stamped_sha256: str | None  # what kbuild wrote; differs from path.sha256 if someone changed the file
    source: str | None  # where it came from (for files pulled from an archive by the host)


def stamp_name(path: str) -> str:
    """The stamp file's name for a path, as kb_stamp and kb_stamp_name spell it."""
    return path.replace("/", "_")


@dataclass(frozen=True)
class PathQuery(FactQuery):
    """Type, mode, owner, size and sha256 of a path (and its upload stamp, for artifacts)."""

    path: str
    content: bool = False  # also its bytes, for --diff
    artifact: bool = False  # answer with an ArtifactFact
    kind: ClassVar[str] = "path"

    @classmethod
    def batch_script(cls, queries: Sequence[PathQuery]) -> str:
        # The first word flags each path: `a` for an artifact (its upload stamp is read), `f` for any other.
        flags = "".join("a" if x.artifact else "f" for x in queries)
        lines = [command("kb_paths", flags, *(x.path for x in queries))]
        wanted = [x.path for x in queries if x.content]
        if wanted:
            lines.append(command("kb_contents", *wanted))
        return "\n".join(lines)

    @classmethod
    def batch_parse(cls, sections: Sections, queries: Sequence[PathQuery]) -> list[PathFact | ArtifactFact]:
        if "path.race" in sections:
            raise FactError("files changed on the host while their facts were read; run again")
        types = _section(sections, "path.types", len(queries))
        present = [t in ("file", "directory") for t in types[:len(queries)]]
        stats = iter(_section(sections, "path.stat", sum(present)))
        stamps = iter(sections.get("path.stamps", []))
        sums = iter(sections.get("path.sums", []))
        facts: list[PathFact | ArtifactFact] = []
        for query, kind, has_stat in zip(queries, types, present):
            stamped = source = sha = None
            mode = owner = group = size = None
            if has_stat:
                fields = next(stats).split(" ")
                if len(fields) < 5:
                    raise FactError(f"cannot read the stat line of {query.path}: {' '.join(fields)!r}")
                size, raw, owner, group = int(fields[0]), int(fields[2], 16), fields[3], fields[4]
                mode = raw & 0o7777
                kind = {0o100000: "file", 0o040000: "directory", 0o120000: "link"}.get(raw & 0o170000, "other")
                if kind == "file":
                    try:
                        state, stamped_line, source_line = (next(stamps), next(stamps), next(stamps)) \
                            if query.artifact else ("none", "", "")
                        sha = stamped_line if state == "fresh" else _sum(next(sums))
                    except StopIteration:
                        raise FactError(f"no checksum came back for {query.path}; output was cut short") from None
                    if state != "none":
                        stamped, source = stamped_line or None, source_line or None
            fact = PathFact(kind, mode, owner, group, size, sha or None)
            facts.append(ArtifactFact(fact, stamped, source) if query.artifact else fact)
        return _with_contents(facts, queries, sections)


def _sum(line: str) -> str:
    # sha256sum marks a line whose file name it had to escape with a leading backslash.
    return line.removeprefix("\\")[:64]


def _with_contents(facts: list[Any], queries: Sequence[PathQuery], sections: Sections) -> list[Any]:
    """Give each file asked for with content its bytes, cut from the one base64 stream by the sizes stat gave."""
    wanted = [i for i, x in enumerate(queries) if x.content and not x.artifact and facts[i].type == "file"]
    if not wanted:
        return facts
    data = base64.b64decode("".join(_section(sections, "path.content", 1)))
    if len(data) != sum(facts[i].size for i in wanted):
        raise FactError("files changed on the host while their content was read; run again")
    offset = 0
    for i in wanted:
        size = facts[i].size
        facts[i] = dataclasses.replace(facts[i], content=data[offset:offset + size])
        offset += size
    return facts


@dataclass(frozen=True)
class ServiceFact:
    enabled: str  # enabled | disabled | static | masked | not-found | ""
    active: str  # active | inactive | failed | activating | ...
    load_state: str  # loaded | not-found | masked

    @property
    def running(self) -> bool:
        return self.active in ("active", "reloading", "activating")

    @property
    def is_enabled(self) -> bool:
        return self.enabled in ("enabled", "enabled-runtime", "static", "alias")


@dataclass(frozen=True)
class ServiceQuery(FactQuery):
    name: str
    kind: ClassVar[str] = "service"

    @classmethod
    def batch_script(cls, queries: Sequence[ServiceQuery]) -> str:
        # One `systemctl show` answers for every unit, a block per unit in the order asked.
        return (f'echo "$KB_M service"\n'
                + command("systemctl", "show", "-p", "LoadState", "-p", "ActiveState", "-p", "UnitFileState",
                          "--", *(x.name for x in queries)) + " 2>/dev/null")

    @classmethod
    def batch_parse(cls, sections: Sections, queries: Sequence[ServiceQuery]) -> list[ServiceFact]:
        blocks: list[dict[str, str]] = [{}]
        for line in sections.get("service", []):
            if not line.strip():
                if blocks[-1]:
                    blocks.append({})
                continue
            key, _, value = line.partition("=")
            blocks[-1][key] = value.strip()
        blocks = [b for b in blocks if b]
        if len(blocks) != len(queries):  # no systemd answering: every service is unknown, as `is-active` says
            blocks = [{} for _ in queries]
        return [ServiceFact(b.get("UnitFileState", ""), b.get("ActiveState", ""), b.get("LoadState", ""))
                for b in blocks]


@dataclass(frozen=True)
class SysctlFact:
    value: str | None  # None: the key does not exist on this kernel/namespace
    persisted: str | None


@dataclass(frozen=True)
class SysctlQuery(FactQuery):
    key: str
    persist_file: str
    kind: ClassVar[str] = "sysctl"

    @property
    def proc_path(self) -> str:
        return "/proc/sys/" + self.key.replace(".", "/")

    @classmethod
    def batch_script(cls, queries: Sequence[SysctlQuery]) -> str:
        # One head reads every value: /proc/sys answers a read at an offset with nothing, so the shell's
        # byte-by-byte `read` would see one character. `-v` names each file, so a missing key is no gap.
        return "\n".join(['echo "$KB_M sysctl.values"',
                          command("head", "-v", "-n", "1", "--", *(x.proc_path for x in queries)) + " 2>/dev/null",
                          'echo "$KB_M sysctl.persisted"',
                          *(command("kb_persisted", x.persist_file) for x in queries)])

    @classmethod
    def batch_parse(cls, sections: Sections, queries: Sequence[SysctlQuery]) -> list[SysctlFact]:
        wanted = {f"==> {x.proc_path} <==" for x in queries}
        values: dict[str, str] = {}
        lines = sections.get("sysctl.values", [])
        for i, line in enumerate(lines):
            if line in wanted and i + 1 < len(lines):
                values[line[4:-4]] = lines[i + 1]
        persisted = _section(sections, "sysctl.persisted", len(queries))
        return [SysctlFact(values[x.proc_path].replace("\t", " ").strip() if x.proc_path in values else None,
                           p[1:].lstrip(" ") if p.startswith("p") else None)
                for x, p in zip(queries, persisted)]


@dataclass(frozen=True)
class ModuleFact:
    loaded: bool
    persisted: bool


@dataclass(frozen=True)
class ModuleQuery(FactQuery):
    name: str
    probe: str | None
    persist_file: str
    kind: ClassVar[str] = "module"

    @classmethod
    def batch_script(cls, queries: Sequence[ModuleQuery]) -> str:
        return "\n".join(['echo "$KB_M module"', *(command("kb_module", x.name, x.probe or "", x.persist_file)
                                                    for x in queries)])

    @classmethod
    def batch_parse(cls, sections: Sections, queries: Sequence[ModuleQuery]) -> list[ModuleFact]:
        lines = _section(sections, "module", 2 * len(queries))
        return [ModuleFact(lines[2 * i] == "yes", lines[2 * i + 1] == "yes") for i in range(len(queries))]


@dataclass(frozen=True)
class GuardFact:
    """Whether a read-only shell test (a guard such as `test -e X`) succeeds on the host."""

    ok: bool


@dataclass(frozen=True)
class GuardQuery(FactQuery):
    test: str | None  # None: no guard, the command always runs
    kind: ClassVar[str] = "guard"

    @classmethod
    def batch_script(cls, queries: Sequence[GuardQuery]) -> str:
        # A guard runs in a subshell of the fact script (a fork, no new program), with no stdin.
        return "\n".join(['echo "$KB_M guard"', *(command("kb_test", x.test) if x.test else "echo no"
                                                   for x in queries)])

    @classmethod
    def batch_parse(cls, sections: Sections, queries: Sequence[GuardQuery]) -> list[GuardFact]:
        return _yes_no(sections, "guard", len(queries))


@dataclass(frozen=True)
class ExistsQuery(FactQuery):
    """Whether a path exists (a `creates` guard), answered by the shell's own `[ -e ]`: no process per guard."""

    path: str
    kind: ClassVar[str] = "exists"

    @classmethod
    def batch_script(cls, queries: Sequence[ExistsQuery]) -> str:
        return "\n".join(['echo "$KB_M exists"', *(command("kb_exists", x.path) for x in queries)])

    @classmethod
    def batch_parse(cls, sections: Sections, queries: Sequence[ExistsQuery]) -> list[GuardFact]:
        return _yes_no(sections, "exists", len(queries))


def _yes_no(sections: Sections, name: str, count: int) -> list[GuardFact]:
    """A section of `count` yes/no lines (kb_test's, kb_exists'), one per query."""
    return [GuardFact(line == "yes") for line in _section(sections, name, count)[:count]]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The words `ip route` prints before the destination of a route that is not plain unicast.
ROUTE_TYPES = frozenset({"unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit",
                         "blackhole", "nat", "anycast"})


@dataclass(frozen=True)
class RouteFact:
    """The main table's routes to exactly one destination, each as its words (a multipath route's nexthops too)."""

    routes: tuple[tuple[str, ...], ...] = ()

    @property
    def gateways(self) -> set[str]:
        """Every address a route to the destination goes via, as `ip` spells it."""
        return {words[i + 1] for words in self.routes for i, w in enumerate(words[:-1]) if w == "via"}

    def goes_via(self, gateway: str) -> bool:
        wanted = ipaddress.ip_address(gateway)
        return any(_same_address(found, wanted) for found in self.gateways)


def _same_address(text: str, wanted: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text) == wanted
    except ValueError:  # `via inet6 ADDR` and other spellings that are not the plain address asked for
        return False


@dataclass(frozen=True)
class RouteQuery(FactQuery):
    """The routes to one destination (a CIDR), or with `within` to every network inside it (itself included).
    The table is read once per family and host, however many routes are asked: a guard per route
    (`ip route show X | grep`) started processes per peer on every node."""

    destination: str
    within: bool = False
    kind: ClassVar[str] = "route"

    @property
    def network(self) -> Network:
        return ipaddress.ip_network(self.destination, strict=False)

    @classmethod
    def batch_script(cls, queries: Sequence[RouteQuery]) -> str:
        families = sorted({x.network.version for x in queries})
        listing = {v: command("ip", f"-{v}", "route", "show", "table", "main") for v in families}
        return "\n".join(f'echo "$KB_M route.{v}"\n{listing[v]} 2>/dev/null' for v in families)

    @classmethod
    def batch_parse(cls, sections: Sections, queries: Sequence[RouteQuery]) -> list[RouteFact]:
        tables = {v: parse_routes(sections.get(f"route.{v}", []), v) for v in {x.network.version for x in queries}}
        facts = []
        for x in queries:
            table, wanted = tables[x.network.version], x.network
            if x.within:
                inside = [routes for net, routes in table.items() if net.subnet_of(wanted)]  # type: ignore[arg-type]
                found = [r for routes in inside for r in routes]
            else:
                found = table.get(wanted, [])
            facts.append(RouteFact(tuple(found)))
        return facts


def parse_routes(lines: Sequence[str], version: int) -> dict[Network, list[tuple[str, ...]]]:
    """`ip route show` output as destination network -> its routes' words. A line that starts with white space
    (a multipath route's `nexthop via ...`) belongs to the route above it; a line naming no readable
    destination is left out, with its nexthops."""
    routes: list[tuple[Network | None, list[str]]] = []
    for line in lines:
        words = line.split()
        if not words:
            continue
        if line[0].isspace():
            if routes:
                routes[-1][1].extend(words)
            continue
        dest = words[1] if words[0] in ROUTE_TYPES and len(words) > 1 else words[0]
        if dest == "default":
            dest = "0.0.0.0/0" if version == 4 else "::/0"
        try:
            network: Network | None = ipaddress.ip_network(dest, strict=False)
        except ValueError:
            network = None
        routes.append((network, words))
    table: dict[Network, list[tuple[str, ...]]] = {}
    for network, words in routes:
        if network is not None:
            table.setdefault(network, []).append(tuple(words))
    return table


@dataclass(frozen=True)
class ShellQuery(FactQuery):
    """A fact of its own kind: a snippet and its parser, one section each (images, and plays' own facts)."""

    snippet: str
    parse: Callable[[str], Any]
    kind: ClassVar[str] = "shell"

    @classmethod
    def batch_script(cls, queries: Sequence[ShellQuery]) -> str:
        return "\n".join(f'echo "$KB_M shell.{i}"\n{{ {x.snippet} ; }} 2>/dev/null' for i, x in enumerate(queries))

    @classmethod
    def batch_parse(cls, sections: Sections, queries: Sequence[ShellQuery]) -> list[Any]:
        if any(f"shell.{i}" not in sections for i in range(len(queries))):
            raise FactError("the shell facts came back incomplete; output was cut short")
        return [x.parse("\n".join(sections[f"shell.{i}"])) for i, x in enumerate(queries)]


def fact_script(queries: Sequence[FactQuery], marker: str) -> str:
    """The one script that answers every query of a host; its output frames sections with `marker`.

    The answers are gathered in a variable and written at once: line by line, each `echo` left the host
    as an SSH packet of its own, which cost sshd and the controller (decrypting, checking the MAC, waking
    the reader) per line, 3 to 10 ms of the controller's CPU for a host of 25 resources against 1.4 ms.
    Its stdin is /dev/null: the script itself comes on stdin, and no fact command may read the rest of it."""
    lines = [f"KB_M={q(marker)}", "LC_ALL=C; export LC_ALL", FACT_FUNCTIONS, "kb_facts() {"]
    for kind, group in _by_kind(queries).items():
        lines.append(kind.batch_script([x for _, x in group]))
    lines += ['echo "$KB_M end"', "}", "kb_out=$(kb_facts </dev/null)", "printf '%s\\n' \"$kb_out\""]
    return "\n".join(lines)


def parse_facts(output: str, marker: str, queries: Sequence[FactQuery]) -> list[Any]:
    """The facts, in the order of the queries, from the output of fact_script."""
    sections = split_sections(output, marker)
    if "end" not in sections:
        raise FactError("the fact script stopped before its end; output was cut short")
    facts: list[Any] = [None] * len(queries)
    for kind, group in _by_kind(queries).items():
        answers = kind.batch_parse(sections, [x for _, x in group])
        for (i, _), fact in zip(group, answers):
            facts[i] = fact
    return facts


def split_sections(output: str, marker: str) -> Sections:
    sections: Sections = {}
    current: list[str] | None = None
    head = marker + " "
    for line in output.split("\n"):
        if line.startswith(head):
            current = sections.setdefault(line[len(head):].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def _by_kind(queries: Sequence[FactQuery]) -> dict[type[FactQuery], list[tuple[int, FactQuery]]]:
    groups: dict[type[FactQuery], list[tuple[int, FactQuery]]] = {}
    for i, query in enumerate(queries):
        groups.setdefault(type(query), []).append((i, query))
    return groups
