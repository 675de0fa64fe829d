"""The real kubectl (built for the test mirror) against a lab cluster, and the pods tests run on it.

Pods in tests use images already on the nodes (kbuild imported them from the mirror's archives),
with imagePullPolicy Never: the lab has no registry, and a test must never depend on one.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Kubectl:
    binary: Path
    kubeconfig: Path

    def run(self, *args: str, input: str | None = None, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.binary), f"--kubeconfig={self.kubeconfig}", *args], input=input,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, *objects: dict[str, Any]) -> None:
        self.run("apply", "-f", "-", input=yaml.safe_dump_all(objects))

    def wait_for(self, condition: str, *targets: str, timeout: float = 180) -> None:
        self.run("wait", f"--for={condition}", f"--timeout={int(timeout)}s", *targets, timeout=timeout + 30)

    def phase(self, pod: str, namespace: str = "default") -> str:
        return self.json("get", "pod", pod, "-n", namespace)["status"].get("phase", "")


def busybox_pod(name: str, image: str, *, node: str | None = None, command: str = "sleep 3600",
             namespace: str = "default", labels: dict[str, str] | None = None,
             requests: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod of the test image running `command` under sh, optionally pinned to `node`."""
    container: dict[str, Any] = {"name": "main", "image": image, "imagePullPolicy": "Never",
                                 "command": ["sh", "-c", command]}
    if requests:
        container["resources"] = {"requests": requests}
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 1}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}}, "spec": spec}


def wait_until_gone(kubectl: Kubectl, *targets: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while kubectl.run("get", *targets, "--ignore-not-found", "-o", "name", check=False).stdout.strip():
        if time.monotonic() > deadline:
            raise AssertionError(f"{' '.join(targets)} still there after {timeout:.0f}s")
        time.sleep(1)
