"""pflag-like command-line parsing against a component's real flag list (kept as test data)."""

from __future__ import annotations

from dataclasses import dataclass, field

# pflag's strconv.ParseBool accepts exactly these spellings.
TRUE_WORDS = {"1", "t", "T", "TRUE", "true", "True"}
FALSE_WORDS = {"0", "f", "F", "FALSE", "false", "False"}


class FlagError(Exception):
    """A command line the real component would refuse (message in pflag's words)."""


@dataclass(frozen=True)
class FlagSpec:
    name: str
    type: str
    shorthand: str = ""

    @property
    def is_bool(self) -> bool:
        return self.type == "bool"

    @property
    def optional_value(self) -> bool:
        # --version is a "version[=true]" flag: a bare --version means "true" and never eats the next arg.
        return self.type == "version"


def parse_spec(text: str) -> dict[str, FlagSpec]:
    """Parse a flag list file: '--name type [-s]' per line, '#' comments."""
    specs: dict[str, FlagSpec] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        name = parts[0].removeprefix("--")
        short = parts[2].removeprefix("-") if len(parts) > 2 else ""
        specs[name] = FlagSpec(name, parts[1], short)
    return specs


def parse_bool(flag: str, value: str) -> bool:
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise FlagError(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseBool: parsing "{value}": invalid syntax')


@dataclass
class Flags:
    """Parsed flags: every occurrence is kept, in order, because list flags accumulate."""

    specs: dict[str, FlagSpec]
    values: dict[str, list[str]] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    def given(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, default: str = "") -> str:
        self._known(name)
        vals = self.values.get(name)
        return vals[-1] if vals else default

    def get_bool(self, name: str, default: bool = False) -> bool:
        self._known(name)
        vals = self.values.get(name)
        return parse_bool("--" + name, vals[-1]) if vals else default

    def get_list(self, name: str, default: list[str] | None = None) -> list[str]:
        """A strings/stringSlice flag: comma-separated, repeatable."""
        self._known(name)
        vals = self.values.get(name)
        if not vals:
            return list(default or [])
        out: list[str] = []
        for v in vals:
            out.extend(p.strip() for p in v.split(",") if p.strip())
        return out

    def _known(self, name: str) -> None:
        # A stand-in asking for a flag its version does not have is a bug in the stand-in, not the user.
        if name not in self.specs:
            raise KeyError(f"flag --{name} is not in this version's flag list")


def parse(argv: list[str], specs: dict[str, FlagSpec]) -> Flags:
    """Parse argv the way pflag does (interspersed args allowed, '--' ends flags)."""
    flags = Flags(specs)
    shorts = {s.shorthand: s for s in specs.values() if s.shorthand}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            flags.args.extend(argv[i:])
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            spec = specs.get(name)
            if spec is None:
                raise FlagError(f"unknown flag: --{name}")
            if eq:
                pass
            elif spec.is_bool or spec.optional_value:
                value = "true"
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                raise FlagError(f"flag needs an argument: --{name}")
            if spec.is_bool:
                parse_bool("--" + name, value)
            flags.values.setdefault(name, []).append(value)
        elif arg.startswith("-") and len(arg) > 1:
            letter = arg[1]
            spec = shorts.get(letter)
            if spec is None:
                raise FlagError(f"unknown shorthand flag: '{letter}' in {arg}")
            rest = arg[2:]
            if rest.startswith("="):
                value = rest[1:]
            elif rest:
                value = rest
            elif spec.is_bool:
                value = "true"
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                raise FlagError(f"flag needs an argument: '{letter}' in -{letter}")
            if spec.is_bool:
                parse_bool("-" + letter, value)
            flags.values.setdefault(spec.name, []).append(value)
        else:
            flags.args.append(arg)
    return flags
