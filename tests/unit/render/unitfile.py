"""A small reader of systemd unit files for tests: sections, keys, and ExecStart split into argv."""

from __future__ import annotations

import shlex


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (a key may repeat); backslash-newline continues a line."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    logical = text.replace("\\\n", " ")
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def exec_start(text: str) -> list[str]:
    """The ExecStart command line as argv (systemd's quoting is close enough to the shell's here)."""
    values = parse_unit(text)["Service"]["ExecStart"]
    assert len(values) == 1, values
    return shlex.split(values[0].replace("$$", "$").replace("%%", "%"))


def flag_map(argv: list[str]) -> dict[str, str]:
    """--name=value arguments -> {name: value}; every kbuild flag is written in that form."""
    flags: dict[str, str] = {}
    for arg in argv[1:]:
        assert arg.startswith("--") and "=" in arg, f"not --name=value: {arg!r}"
        name, _, value = arg[2:].partition("=")
        assert name not in flags, f"--{name} given twice"
        flags[name] = value
    return flags
