"""klog-style log lines on stderr: 'I1127 10:02:25.123456   12345 file.go:42] "msg" key="value"'."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

_lock = threading.Lock()


def _fmt_value(v: object) -> str:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return json.dumps(v)
    return json.dumps(str(v))


def log(severity: str, source: str, msg: str, **kv: object) -> None:
    now = time.time()
    lt = time.gmtime(now)
    micros = int((now % 1) * 1_000_000)
    head = f"{severity}{lt.tm_mon:02d}{lt.tm_mday:02d} {lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d}.{micros:06d}"
    pairs = "".join(f" {k}={_fmt_value(v)}" for k, v in kv.items())
    line = f"{head} {os.getpid():>7d} {source}] {json.dumps(msg)}{pairs}\n"
    with _lock:
        sys.stderr.write(line)
        sys.stderr.flush()


def info(source: str, msg: str, **kv: object) -> None:
    log("I", source, msg, **kv)


def warning(source: str, msg: str, **kv: object) -> None:
    log("W", source, msg, **kv)


def error(source: str, msg: str, **kv: object) -> None:
    log("E", source, msg, **kv)
