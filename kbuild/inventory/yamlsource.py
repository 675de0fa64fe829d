"""YAML loading that keeps line numbers and refuses duplicate keys (PyYAML silently keeps the last)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from kbuild.errors import Problem

KeyPath = tuple[str, ...]


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


def load_yaml(text: str, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader,
              duplicates: str = "error") -> YamlDocument:
    """Parse one YAML document; syntax errors and duplicate keys become Problems, not exceptions.

    duplicates="warning" keeps the last value, as Ansible does with its own files.
    """
    try:
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
    _index(root, (), doc, duplicates)
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


def _index(node: yaml.Node, path: KeyPath, doc: YamlDocument, duplicates: str = "error") -> None:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
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
            _index(value_node, path + (key,), doc, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (str(i),), doc, duplicates)
