"""Patch semantics the apiserver stand-in needs: JSON merge patch, JSON patch, strategic merge (approximated)."""

from __future__ import annotations

import copy


class PatchError(Exception):
    pass


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386. Strategic merge patch is applied the same way: enough for the fields kbuild patches."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # strategic-merge directives ($patch, $retainKeys...) are not needed here
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(target: object, ops: list[dict]) -> object:
    """RFC 6902 (add, remove, replace, test)."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = _pointer(op.get("path", ""))
        if not parts:
            raise PatchError("patching the whole document is not supported")
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        kind = op.get("op")
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise PatchError(f"test operation failed at {op.get('path')}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(idx, op.get("value"))
                else:
                    parent[idx] = op.get("value")
            else:
                if kind == "replace" and last not in parent:
                    raise PatchError(f"replace operation does not apply: doc is missing key: {op.get('path')}")
                parent[last] = op.get("value")
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            elif last in parent:
                del parent[last]
            else:
                raise PatchError(f"remove operation does not apply: doc is missing path: {op.get('path')}")
        else:
            raise PatchError(f"unexpected kind: {kind}")
    return doc
