"""The JSON document in a tool's output, which may carry log lines (JSON too, etcd's) around it."""

from __future__ import annotations

import json
from typing import Any


def json_document(text: str, key: str | None = None) -> Any:
    """The whole output as one JSON document (kubectl's, pretty-printed), or else the first JSON list on a
    line of its own, or the first such object that has `key` (etcdctl's, among its JSON log lines).

    Raises ValueError quoting the start of the output when there is none, so the message shows what came."""

    def wanted(data: Any) -> bool:
        return isinstance(data, list) or key is None or (isinstance(data, dict) and key in data)

    whole = text.strip()
    try:
        data = json.loads(whole)
    except ValueError:
        pass
    else:
        if wanted(data):
            return data
        raise ValueError(f"the JSON has no {key!r}: {whole[:200]}")
    for line in whole.splitlines():
        line = line.strip()
        if not line.startswith(("{", "[")):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if wanted(data):
            return data
    raise ValueError(f"no JSON in the output: {whole[:300] or '(empty)'}")


def member_id(value: object) -> str:
    """An etcd ID as etcdctl's tables print it (hex): JSON numbers by default, hex strings with --hex."""
    if isinstance(value, bool):
        raise ValueError(f"not an etcd ID: {value!r}")
    if isinstance(value, int):
        return f"{value:x}"
    if isinstance(value, str):
        return f"{int(value, 16):x}"
    raise ValueError(f"not an etcd ID: {value!r}")
