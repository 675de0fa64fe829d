"""Just enough Kubernetes protobuf decoding for access reviews (kubectl auth can-i sends protobuf only)."""

from __future__ import annotations

MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, bytes | int]]:
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((num, val))
    return out


def _strings(buf: bytes, names: dict[int, str]) -> dict:
    out: dict = {}
    for num, val in fields(buf):
        if num in names and isinstance(val, bytes):
            out[names[num]] = val.decode()
    return out


_RESOURCE = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
_NON_RESOURCE = {1: "path", 2: "verb"}


def access_review(data: bytes) -> dict:
    """Decode a (Self)SubjectAccessReview from the k8s protobuf envelope into its JSON shape."""
    if not data.startswith(MAGIC):
        raise ValueError("not a kubernetes protobuf message")
    raw = b""
    for num, val in fields(data[len(MAGIC):]):
        if num == 2 and isinstance(val, bytes):
            raw = val
    spec: dict = {}
    for num, val in fields(raw):
        if num != 2 or not isinstance(val, bytes):
            continue
        for snum, sval in fields(val):
            if snum == 1:
                spec["resourceAttributes"] = _strings(sval, _RESOURCE)
            elif snum == 2:
                spec["nonResourceAttributes"] = _strings(sval, _NON_RESOURCE)
            elif snum == 3:
                spec["user"] = sval.decode()
            elif snum == 4:
                spec.setdefault("groups", []).append(sval.decode())
    return {"spec": spec}
