"""Shared stand-in plumbing: build info, version output, fatal errors, file checks, signals."""

from __future__ import annotations

import ipaddress
import json
import os
import platform
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from . import klog
from .flags import FALSE_WORDS, TRUE_WORDS, FlagError, Flags, FlagSpec, parse, parse_spec


class Fatal(Exception):
    """The component cannot start; the message mirrors what the real binary would say."""


@dataclass(frozen=True)
class BuildInfo:
    component: str
    version: str  # "1.33.5", no leading v
    flags_text: str
    self_signed_cert: str
    self_signed_key: str

    @property
    def git_version(self) -> str:
        return "v" + self.version

    @property
    def major(self) -> str:
        return self.version.split(".")[0]

    @property
    def minor(self) -> str:
        return self.version.split(".")[1]

    def version_info(self) -> dict[str, str]:
        # Field names and order as kube's version.Info JSON (/version, --version=raw).
        return {
            "major": self.major,
            "minor": self.minor,
            "emulationMajor": self.major,
            "emulationMinor": self.minor,
            "minCompatibilityMajor": self.major,
            "minCompatibilityMinor": str(int(self.minor) - 1),
            "gitVersion": self.git_version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24.6",
            "compiler": "gc",
            "platform": "linux/" + go_arch(),
        }


def go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def flag_specs(info: BuildInfo) -> dict[str, FlagSpec]:
    return parse_spec(info.flags_text)


def parse_command_line(info: BuildInfo, argv: list[str]) -> Flags:
    """Parse flags; handle --help/--version the way cobra/verflag do; exit 1 on a bad command line."""
    try:
        flags = parse(argv, flag_specs(info))
    except FlagError as err:
        fail_flags(info, str(err))
    if flags.args:
        fail_flags(info, f"{json.dumps(info.component)} does not take any arguments, got {json.dumps(flags.args)}")
    if flags.given("help"):
        sys.stdout.write(usage(info))
        sys.exit(0)
    if flags.given("version"):
        value = flags.get("version")
        if value == "raw":
            fields = ", ".join(f"{k[0].upper()}{k[1:]}:{json.dumps(v)}" for k, v in info.version_info().items())
            print(f"version.Info{{{fields}}}")
            sys.exit(0)
        if value in TRUE_WORDS:
            print(f"Kubernetes {info.git_version}")
            sys.exit(0)
        if value not in FALSE_WORDS:
            # --version=vX.Y.Z overrides the reported version, like verflag does.
            print(f"Kubernetes {value}")
            sys.exit(0)
    return flags


def usage(info: BuildInfo) -> str:
    lines = [f"Usage:\n  {info.component} [flags]\n\nFlags:\n"]
    for spec in flag_specs(info).values():
        short = f"-{spec.shorthand}, " if spec.shorthand else "    "
        typ = "" if spec.is_bool else f" {spec.type}"
        lines.append(f"  {short}--{spec.name}{typ}\n")
    return "".join(lines)


def fail_flags(info: BuildInfo, message: str) -> None:
    if info.component == "kubelet":
        message = f"failed to parse kubelet flag: {message}"
    sys.stderr.write(f"Error: {message}\n")
    if info.component != "kubelet":
        sys.stderr.write(f"Usage:\n  {info.component} [flags]\n\nRun '{info.component} --help' for the flags.\n")
    klog.error("run.go:72", "command failed", err=message)
    sys.exit(1)


def in_cluster_error() -> Fatal:
    """What client-go says when a component has no kubeconfig and is not running in a pod."""
    return Fatal("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined")


def run_main(info: BuildInfo, main) -> None:
    """Run a component main(info, flags, stop); a Fatal ends it the way cli.Run does (exit 1)."""
    flags = parse_command_line(info, sys.argv[1:])
    stop = threading.Event()

    def on_signal(signum, _frame):
        klog.info("signal.go:29", "Received signal to terminate, shutting down", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        main(info, flags, stop)
    except Fatal as err:
        sys.stderr.write(f"Error: {err}\n")
        klog.error("run.go:72", "command failed", err=str(err))
        sys.exit(1)
    sys.exit(0)


# -- files ------------------------------------------------------------------------------------------


def require_file(path: str, what: str) -> str:
    """A flag or config field naming a file that must exist (error names the file, as Go's os.Open does)."""
    if not os.path.exists(path):
        raise Fatal(f"{what}: open {path}: no such file or directory")
    if os.path.isdir(path):
        raise Fatal(f"{what}: read {path}: is a directory")
    return path


def read_text(path: str, what: str) -> str:
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as err:
        raise Fatal(f"{what}: open {path}: {err.strerror.lower()}") from err


def check_cert_file(path: str, what: str) -> None:
    text = read_text(path, what)
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise Fatal(f"{what}: {path}: data does not contain any valid RSA or ECDSA certificates")


def check_key_file(path: str, what: str) -> None:
    text = read_text(path, what)
    if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
        raise Fatal(f"{what}: {path}: tls: failed to find any PEM data in key input")


def check_pem_keys(path: str, what: str) -> None:
    """A service-account key file: PEM private or public keys."""
    text = read_text(path, what)
    if "-----BEGIN" not in text or "KEY-----" not in text:
        raise Fatal(f"{what}: failed to parse key file {json.dumps(path)}: data does not contain any valid RSA or ECDSA public keys")


def check_cert_key_pair(cert: str, key: str, what: str) -> None:
    check_cert_file(cert, what)
    check_key_file(key, what)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as err:
        raise Fatal(f"{what}: unable to load server certificate: tls: private key does not match public key ({err.reason})") from err


def check_ca_file(path: str, what: str) -> None:
    check_cert_file(path, what)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=path)
    except ssl.SSLError as err:
        raise Fatal(f"{what}: {path}: data does not contain any valid RSA or ECDSA certificates") from err


def self_signed_pair(info: BuildInfo) -> tuple[str, str]:
    """Write the build-time self-signed serving pair (the real binaries self-sign when given no cert)."""
    tmp = tempfile.mkdtemp(prefix=f"{info.component}-selfsigned-")
    cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
    with open(cert, "w") as fh:
        fh.write(info.self_signed_cert)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(info.self_signed_key)
    return cert, key


# -- time -------------------------------------------------------------------------------------------


def now_rfc3339() -> str:
    """metav1.Time: seconds, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def micro_time(t: float | None = None) -> str:
    """metav1.MicroTime (Lease renewTime, audit stamps)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000000Z"


def parse_micro_time(s: str) -> float:
    try:
        return time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except (TypeError, ValueError):
        return 0.0


# -- networking -------------------------------------------------------------------------------------


def split_host_port(hostport: str, default_port: int) -> tuple[str, int]:
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    if hostport.count(":") == 1:
        host, port = hostport.split(":")
        return host, int(port)
    return hostport, default_port


def listen_error(host: str, port: int, err: OSError) -> str:
    reason = (err.strerror or str(err)).lower()
    return f"failed to create listener: failed to listen on {host}:{port}: listen tcp {host}:{port}: bind: {reason}"


def parse_ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as err:
        raise Fatal(f"{what}: invalid IP address {json.dumps(value)}") from err


def node_hostname() -> str:
    return socket.gethostname().strip().lower()


def default_ipv4() -> str:
    """The address the default route leaves from (no packet is sent by a UDP connect)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("198.18.0.254", 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
