"""YAML loading that keeps line numbers and refuses duplicate keys (PyYAML silently keeps the last).

It is also bounded and strict, because an inventory may come from anyone: nesting depth and the
values aliases expand to are limited before anything is built (a 438-byte "billion laughs" file
would otherwise grow to gigabytes, a recursive alias or deep nesting end in RecursionError);
explicit tags (`!!int abc`) are refused; keys stay strings (YAML 1.1 reads a host named `007` as
7 and `12:30` as 750); and numbers are plain decimals only, so `port: 22:00` is not 1320.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from kbuild.errors import Problem

KeyPath = tuple[str, ...]

MAX_DEPTH = 32  # an inventory nests five or six levels; 32 leaves room for component configs
MAX_VALUES = 200_000  # every value the document holds once aliases are expanded (2000 hosts fit easily)

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"


class StrictLoader(yaml.SafeLoader):
    """SafeLoader reading numbers as YAML 1.2 does: decimal only, no sexagesimal (22:00), no octal (007),
    no hex, no `_` separators. Whatever is not such a number stays a string."""


StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
StrictLoader.add_implicit_resolver(_FLOAT, re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
                                   list("-+0123456789."))


@dataclass
class YamlDocument:
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of the deepest known key on `path` (a value's own line, else its parent's)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def dotted(path: KeyPath | tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path)


def load_yaml(text: str, *, loader: type[yaml.SafeLoader] = StrictLoader,
              duplicates: str = "error", string_keys: bool = True) -> YamlDocument:
    """Parse one YAML document; syntax errors, duplicate keys and the bounds above become Problems, not
    exceptions. duplicates="warning" keeps the last value, as Ansible does with its own files; a loader
    with tags of its own (Ansible's !vault, !unsafe) has those accepted, every other explicit tag refused.
    string_keys keeps every key a string (a host named 007 stays 007); Ansible's own files keep YAML's types."""
    try:
        problems = _scan(text, loader)
        if problems:
            return YamlDocument(None, problems=problems)
        root = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        return YamlDocument(None, problems=[Problem("", f"not valid YAML: {exc.problem}", line)])
    except yaml.YAMLError as exc:
        return YamlDocument(None, problems=[Problem("", f"not valid YAML: {exc}")])
    if root is None:
        return YamlDocument(None)

    doc = YamlDocument(None)
    _index(root, (), doc, duplicates, string_keys)
    if any(p.severity == "error" for p in doc.problems):
        return doc
    constructor = loader("")
    try:
        doc.data = constructor.construct_document(root)
    except yaml.YAMLError as exc:
        doc.problems.append(Problem("", f"not valid YAML: {exc}"))
    finally:
        constructor.dispose()
    return doc


@dataclass
class _Frame:
    """An open collection while scanning events: where it is, and what its anchor started at."""

    path: KeyPath
    mapping: bool
    anchor: str | None
    start: int  # values counted before it began
    key: str | None = None  # the key whose value comes next (mappings)
    expect_key: bool = True
    index: int = 0  # sequences


def _scan(text: str, loader: type[yaml.SafeLoader] = StrictLoader) -> list[Problem]:
    """Walk the event stream (PyYAML's parser is not recursive, its composer is) and refuse, with the key
    path and line, what would blow up later: depth, alias expansion, recursive aliases, explicit tags."""
    stack: list[_Frame] = []
    sizes: dict[str, int] = {}  # anchor -> values it stands for
    open_anchors: set[str] = set()
    count = 0

    def problem(path: KeyPath, message: str, event: yaml.Event) -> list[Problem]:
        return [Problem(dotted(path), message, event.start_mark.line + 1 if event.start_mark else None)]

    def place() -> tuple[KeyPath, bool]:
        """The path of the node starting now, and whether it is a mapping key."""
        if not stack:
            return (), False
        top = stack[-1]
        if top.mapping:
            return (top.path if top.expect_key else top.path + (top.key or "",)), top.expect_key
        return top.path + (str(top.index),), False

    def done(value: str | None = None) -> None:
        if not stack:
            return
        top = stack[-1]
        if top.mapping:
            if top.expect_key:
                top.key = value if value is not None else "?"
            top.expect_key = not top.expect_key
        else:
            top.index += 1

    own_tags = {tag for tag in loader.yaml_constructors if tag and tag.startswith("!")}
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentStartEvent,
                              yaml.DocumentEndEvent)):
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = stack.pop()
            if frame.anchor is not None:
                sizes[frame.anchor] = count - frame.start
                open_anchors.discard(frame.anchor)
            done()
            continue
        path, is_key = place()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                return problem(path, f"the alias *{event.anchor} refers to a value that contains it "
                                     "(a recursive alias)", event)
            count += sizes.get(event.anchor, 1)
            if count > MAX_VALUES:
                return problem(path, f"the document expands to more than {MAX_VALUES} values through aliases "
                                     f"(*{event.anchor} repeats a large value); write it without nested aliases",
                               event)
            done("?")
            continue
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in own_tags:
            return problem(path, f"explicit YAML tags are not accepted ({tag}); write the value plainly "
                                 "(quote it to make it a string)", event)
        count += 1
        if isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            done(event.value)
            continue
        # A collection starts.
        if is_key:
            return problem(path, "a key must be a plain value, not a list or mapping", event)
        if len(stack) >= MAX_DEPTH:
            return problem(path, f"nested more than {MAX_DEPTH} levels deep", event)
        anchor = event.anchor
        if anchor is not None:
            open_anchors.add(anchor)
        stack.append(_Frame(path, isinstance(event, yaml.MappingStartEvent), anchor, count - 1))
    return []


def _index(node: yaml.Node, path: KeyPath, doc: YamlDocument, duplicates: str = "error",
           string_keys: bool = True) -> None:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if string_keys and isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key_node.tag = _STR  # a host named 007 or on stays a name, not 7 or True
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                suffix = "; the last value is used" if duplicates == "warning" else ""
                doc.problems.append(Problem(dotted(path + (key,)), f"duplicate key (first defined on line "
                                            f"{seen[key]}){suffix}", line, duplicates))
                if duplicates == "error":
                    continue
            seen[key] = line
            doc.lines[path + (key,)] = line
            _index(value_node, path + (key,), doc, duplicates, string_keys)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (str(i),), doc, duplicates, string_keys)
