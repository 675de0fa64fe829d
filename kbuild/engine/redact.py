"""Redaction of secrets in text shown to people (diffs, logs): keys, tokens, passwords."""

from __future__ import annotations

import re

REDACTED = "<redacted>"

# A PEM private key block, whole (any "... PRIVATE KEY" type).
_PEM_KEY = re.compile(
    r"(-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----)(.*?)(-----END \2PRIVATE KEY-----)", re.DOTALL)
# `name: value` / `name = value` / `"name": "value"` where the name says it is secret.
_SECRET_FIELD = re.compile(
    r"""(?P<lead>["']?[\w.-]*(?:key-data|secret|token|password|passwd|private[_-]?key|"""
    r"""client-key|encryption[_-]?key)["']?\s*[:=]\s*)(?P<value>["']?)[^\s"',}]+(?P=value)""",
    re.IGNORECASE,
)
# Encryption-config style: `- name: key1` followed by `secret: <base64>` is caught above; base64 blobs
# longer than a certificate line on lines that mention "key" are caught here too.
_KEYISH_BLOB = re.compile(r"(?i)(\bkey\b[^\n]{0,40}?[:=]\s*)([A-Za-z0-9+/]{32,}={0,2})")


def redact(text: str) -> str:
    """Replace secret values in `text`, keeping the structure so a diff still shows *that* they changed."""
    text = _PEM_KEY.sub(lambda m: f"{m.group(1)}\n{REDACTED}\n{m.group(4)}", text)
    text = _redact_pem_lines(text)
    text = _SECRET_FIELD.sub(lambda m: f"{m.group('lead')}{REDACTED}", text)
    text = _KEYISH_BLOB.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return text


def _redact_pem_lines(text: str) -> str:
    """In a unified diff a key block is split over +/- lines; blank every line inside one."""
    out: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        body = line[1:] if line[:1] in "+- " and not line.startswith(("+++", "---")) else line
        if re.match(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", body):
            inside = True
            out.append(line)
            continue
        if re.match(r"-----END [A-Z0-9 ]*PRIVATE KEY-----", body):
            inside = False
            out.append(line)
            continue
        if inside and body.strip() and body.strip() != REDACTED:
            out.append(f"{line[:1] if body is not line else ''}{REDACTED}\n")
        else:
            out.append(line)
    return "".join(out)
