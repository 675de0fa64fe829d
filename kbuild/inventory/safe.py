"""Safe forms for inventory values: what may reach a root shell, a unit file or a terminal, one rule each.

Every string that ends up on a host (in a command, a unit, a config) or on the user's terminal is
checked here at load time, so a hostile or careless inventory is refused with the key path before
anything runs. The plays also quote what they send (kbuild.engine.shell); the two layers are meant
to be redundant. Each rule is a plain function raising ValueError (pydantic turns it into a problem
at the field's key path) and an Annotated type the schema uses.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from kbuild import layout

# -- text -------------------------------------------------------------------------------------------------

MAX_TEXT = 4096  # no inventory value needs more; a 200 kB string is a mistake or an attack


def printable(value: str) -> str:
    """No control, format (bidi overrides) or line-separator characters: a newline would add a line to a
    rendered unit, an escape sequence would reach the terminal raw."""
    if len(value) > MAX_TEXT:
        raise ValueError(f"{value[:40]!r}... is {len(value)} characters long (at most {MAX_TEXT})")
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        raise ValueError(f"{value!r} contains the control character U+{ord(bad):04X}; "
                         "write it on one line, without control or formatting characters")
    return value


def ascii_printable(value: str) -> str:
    printable(value)
    if not value.isascii():
        raise ValueError(f"{value!r} contains characters outside ASCII")
    return value


Text = Annotated[str, AfterValidator(printable)]
AsciiText = Annotated[str, AfterValidator(ascii_printable)]

# -- numbers and switches: YAML's `true` is not the port 1, and "22" is not a number -----------------------


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")
    return value


def _number(value: Any) -> Any:
    _no_bool(value)
    if not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    return value


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


StrictInt = Annotated[int, Field(strict=True)]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Seconds = Annotated[float, BeforeValidator(_number)]
Switch = Annotated[bool, BeforeValidator(_boolean)]

# -- names ----------------------------------------------------------------------------------------------------

# \A and \Z, not ^ and $: `$` matches before a trailing newline, which would let "m1\n" through a .match().
DNS_LABEL = re.compile(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z", re.ASCII)
DNS_NAME = re.compile(r"\A(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\Z",
                      re.ASCII)
# What ssh accepts as a host name: letters of either case and underscores too (ssh_config aliases).
_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?"
                        r"(\.[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?)*\.?", re.ASCII)
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}", re.ASCII)
# Linux interface names: at most 15 bytes, no '/', no whitespace; kbuild allows the usual characters.
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}", re.ASCII)


def is_dns_label(value: str) -> bool:
    return bool(DNS_LABEL.match(value))


def is_dns_name(value: str) -> bool:
    return bool(DNS_NAME.match(value))


def dns_label(value: str) -> str:
    if not is_dns_label(value):
        raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits and '-', at most 63)")
    return value


def dns_name(value: str) -> str:
    if not is_dns_name(value):
        raise ValueError(f"{value!r} is not a DNS name")
    return value


def ssh_host(value: str) -> str:
    """Where ssh connects: an IP address (loopback too: a forwarded port) or a host name, in ASCII (paramiko
    would fail on anything else only at connect time, after the retries)."""
    if len(value) > 253 or not value.isascii():
        raise ValueError(f"{value[:60]!r} is neither an IP address nor a host name (ASCII, at most 253 characters)")
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        parsed = ipaddress.ip_address(bare)
    except ValueError:
        if not _HOST_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is neither an IP address nor a host name") from None
        return value
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.scope_id is not None \
            and not _IFNAME.fullmatch(parsed.scope_id):
        raise ValueError(f"{value!r}: the scope {parsed.scope_id!r} is not an interface name")
    return bare


def ssh_user(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError(f"{value!r} is not a user name (letters, digits and ._-, at most 32, not starting with -)")
    return value


DnsLabel = Annotated[str, AfterValidator(dns_label)]
DnsName = Annotated[str, AfterValidator(dns_name)]
SSHHost = Annotated[str, AfterValidator(ssh_host)]
SSHUser = Annotated[str, AfterValidator(ssh_user)]

# -- versions, durations, checksums ---------------------------------------------------------------------------

_VERSION = re.compile(r"v?([0-9]{1,4})\.([0-9]{1,4})\.([0-9]{1,6})", re.ASCII)  # ASCII: ٣ is not 3 in a URL
_DURATION = re.compile(r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+")
_SHA256 = re.compile(r"(sha256:)?[0-9a-fA-F]{64}", re.ASCII)


def version(value: object) -> str:
    """X.Y.Z (a leading v accepted), normalised to X.Y.Z."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{value!r} is not a version like 1.37.2")
    match = _VERSION.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a version like 1.37.2")
    return ".".join(str(int(part)) for part in match.groups())


def duration(value: str) -> str:
    """A Go duration as the components' flags take it (40s, 1m30s)."""
    if not _DURATION.fullmatch(value):
        raise ValueError(f"{value!r} is not a duration like 40s or 1m30s")
    return value


def sha256_hex(value: str) -> str:
    if not _SHA256.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a sha256 (64 hex digits, optionally after sha256:)")
    return value.strip()


Duration = Annotated[str, AfterValidator(duration)]
Sha256 = Annotated[str, AfterValidator(sha256_hex)]

# -- addresses ------------------------------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address(value: object) -> IPAddress:
    """A host's unicast address. Unspecified, loopback, multicast and broadcast addresses reach nobody else;
    an IPv4-mapped IPv6 address is an IPv4 host under a second name (a duplicate no check would see)."""
    if isinstance(value, bool) or not isinstance(value, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise ValueError(f"{value!r} is not an IP address")
    text = str(value)
    if len(text) > 64 or not text.isascii():
        raise ValueError(f"{text[:60]!r} is not an IP address")
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.scope_id is not None and not _IFNAME.fullmatch(parsed.scope_id):
            raise ValueError(f"{text!r}: the scope {parsed.scope_id!r} is not an interface name")
        if parsed.ipv4_mapped is not None:
            raise ValueError(f"{text!r} is not usable: an IPv4-mapped address; write it as {parsed.ipv4_mapped}")
    for what, test in (("an unspecified", parsed.is_unspecified), ("a loopback", parsed.is_loopback),
                       ("a multicast", parsed.is_multicast),
                       ("the broadcast", parsed == ipaddress.IPv4Address("255.255.255.255"))):
        if test:
            raise ValueError(f"{text!r} is not usable: {what} address reaches no other host")
    return parsed


def network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(value, bool) or not isinstance(value, (str, ipaddress.IPv4Network, ipaddress.IPv6Network)):
        raise ValueError(f"{value!r} is not a network in CIDR form")
    text = str(value)
    if len(text) > 64 or not text.isascii() or "%" in text:
        raise ValueError(f"{text[:60]!r} is not a network in CIDR form")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network in CIDR form ({exc})") from None


def service_address(value: object) -> IPAddress:
    """An address inside the cluster (cluster_dns): no interface scope, no mapped IPv4."""
    if isinstance(value, bool) or not isinstance(value, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise ValueError(f"{value!r} is not an IP address")
    parsed = address(value)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.scope_id is not None:
        raise ValueError(f"{value!r}: a service address has no interface scope")
    return parsed


HostAddress = Annotated[IPAddress, BeforeValidator(address)]
Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(network)]
ServiceAddress = Annotated[IPAddress, BeforeValidator(service_address)]

# -- Kubernetes syntax: labels and taints ----------------------------------------------------------------------

_QUALIFIED = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", re.ASCII)
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def label_key(value: str) -> str:
    """[prefix/]name, as Kubernetes validates a label key (IsQualifiedName)."""
    prefix, slash, name = value.rpartition("/")
    if slash and not (is_dns_name(prefix) and len(prefix) <= 253):
        raise ValueError(f"{value!r}: the prefix {prefix!r} is not a DNS subdomain")
    if not _QUALIFIED.fullmatch(name):
        raise ValueError(f"{value!r} is not a label key ([prefix/]name: at most 63 letters, digits and -_. "
                         "starting and ending alphanumeric)")
    return value


def label_value(value: str) -> str:
    """Empty, or at most 63 letters, digits and -_. starting and ending alphanumeric (no ',' or '=' that would
    add another label to --node-labels)."""
    if value and not _QUALIFIED.fullmatch(value):
        raise ValueError(f"{value!r} is not a label value (at most 63 letters, digits and -_., starting and "
                         "ending alphanumeric)")
    return value


def taint(value: str) -> str:
    """key[=value]:Effect."""
    body, sep, effect = value.rpartition(":")
    if not sep or effect not in TAINT_EFFECTS or not body:
        raise ValueError(f"{value!r} is not key[=value]:Effect (Effect is one of {', '.join(TAINT_EFFECTS)})")
    key, _, taint_value = body.partition("=")
    label_key(key)
    label_value(taint_value)
    return value


LabelKey = Annotated[str, AfterValidator(label_key)]
LabelValue = Annotated[str, AfterValidator(label_value)]
Taint = Annotated[str, AfterValidator(taint)]

# -- paths on the hosts --------------------------------------------------------------------------------------

_HOST_PATH = re.compile(r"(/[A-Za-z0-9._+-]+)+", re.ASCII)
# Directories a setting must never name: kbuild chmods, moves aside and (--purge-data) deletes them.
# Inside the volatile or kernel ones nothing may live at all.
VOLATILE_DIRS = ("/proc", "/sys", "/dev", "/run", "/tmp", "/boot", "/var/tmp", "/var/run", "/lost+found")
# These, and their first-level children (/var/lib, /usr/local, /etc/ssl, /home/alice), are the system's.
SYSTEM_DIRS = ("/", "/etc", "/usr", "/var", "/root", "/home", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
               "/libx32", "/opt", "/srv", "/mnt", "/media", "/snap")
_WITH_CHILDREN = ("/etc", "/usr", "/var", "/root", "/home", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Directories kbuild itself owns and `kbuild reset` removes whole: data kept inside one would go with it.
KBUILD_DIRS = tuple(str(d) for d in (layout.K8S_DIR, layout.KUBELET_DIR, layout.KUBE_PROXY_DIR,
                                     layout.CNI_CONF_DIR, layout.CNI_BIN_DIR, layout.BIN_DIR,
                                     layout.AUDIT_LOG.parent)) + ("/var/lib/kbuild", "/etc/systemd")


def host_path(value: str) -> str:
    """An absolute, normalised path of plain characters: safe unquoted, and one file on the host."""
    text = value.rstrip("/") if len(value) > 1 else value
    if not _HOST_PATH.fullmatch(text) or len(text) > 255 or \
            any(part in (".", "..") for part in text.split("/")[1:]):
        raise ValueError(f"{value!r} is not an absolute, normalised path of letters, digits and ._+- "
                         "(no '..', no '//', no spaces)")
    return text


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def dangerous_dir(path: str) -> str | None:
    """Why `path` must not be a directory kbuild owns (chmods, moves, deletes), or None when it may."""
    path = posixpath.normpath(path) if path.startswith("/") else path
    for directory in VOLATILE_DIRS:
        if _inside(path, directory):
            return f"{path} is inside {directory}, a system directory whose content is not kept"
    if path in SYSTEM_DIRS:
        return f"{path} is a system directory"
    parent = posixpath.dirname(path)
    if parent in _WITH_CHILDREN:
        return f"{path} is a system directory (a first-level directory of {parent})"
    for directory in KBUILD_DIRS:
        if _inside(path, directory) or _inside(directory, path):
            return f"{path} overlaps {directory}, which kbuild manages and `kbuild reset` removes"
    return None


def data_dir(value: str) -> str:
    """A directory kbuild owns on the host: a host path, and not a system directory."""
    if value and not value.strip("/"):
        reason: str | None = "/ is the root directory"
    else:
        path = host_path(value)
        reason = dangerous_dir(path)
    if reason:
        raise ValueError(f"{reason}; kbuild would chmod, move and (with --purge-data) delete it: use a dedicated "
                         "directory such as /var/lib/etcd or /srv/etcd")
    return path


def dns_upstream(item: str) -> str:
    """Where CoreDNS forwards other names: a resolv.conf path, or an address with an optional :port."""
    if item.startswith("/"):
        return host_path(item)
    if item.startswith("[") and "]:" in item:  # [IPv6]:port, as CoreDNS writes it
        host, _, port = item[1:].partition("]:")
        if not port or ":" not in host:
            raise ValueError(f"{item!r} is not [IPv6 address]:port")
    else:
        host, _, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
    try:
        upstream = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"{item!r} is neither a resolv.conf path nor an IP address[:port]") from None
    if isinstance(upstream, ipaddress.IPv6Address) and upstream.scope_id is not None:
        raise ValueError(f"{item!r}: an upstream resolver address has no interface scope")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{item!r}: {port!r} is not a port")
    return item


HostPath = Annotated[str, AfterValidator(host_path)]
DnsUpstream = Annotated[str, AfterValidator(dns_upstream)]
DataDir = Annotated[str, AfterValidator(data_dir)]

# -- paths on the controller ----------------------------------------------------------------------------------


def local_path(value: str) -> str:
    """A file on this machine: any characters a file name may have, but one line of them."""
    printable(value)
    if not value.strip():
        raise ValueError("an empty path")
    return value


def local_dir(value: str) -> str:
    """A directory kbuild writes into (state, cache): not a system directory."""
    local_path(value)
    expanded = os.path.expanduser(value)
    if expanded.startswith("/"):
        # Here (on this machine, not a host) a directory under /tmp is fine, as in a test or CI run: refused
        # are the system's directories themselves and their first level (a home directory, /var/lib).
        path = posixpath.normpath(expanded)
        if path in SYSTEM_DIRS or path in VOLATILE_DIRS or posixpath.dirname(path) in _WITH_CHILDREN:
            raise ValueError(f"{path} is a system directory or a home directory; kbuild keeps the cluster's keys "
                             "there and tightens its permissions: use a dedicated directory such as .kbuild/<cluster>")
    return value


def known_hosts(value: str) -> str:
    """The file that pins the hosts' keys. /dev/null (or any device) would forget every key: no protection
    against a changed host key at all."""
    local_path(value)
    resolved = os.path.realpath(os.path.expanduser(value))
    if resolved == os.devnull or resolved.startswith("/dev/") or resolved.startswith("/proc/"):
        raise ValueError(f"{value!r} is a device: kbuild would remember no host key and could not notice a "
                         "changed one; use a file (the default is <state dir>/known_hosts)")
    return value


LocalPath = Annotated[str, AfterValidator(local_path)]
LocalDir = Annotated[str, AfterValidator(local_dir)]
KnownHosts = Annotated[str, AfterValidator(known_hosts)]
