"""`kbuild inventory convert`: an Ansible/kubespray inventory or a k0sctl.yaml written as a kbuild inventory.

The output is YAML with a comment on each value saying where it came from, and a header listing
what was dropped (the warnings). It is validated before it is written, and written atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from kbuild.errors import UsageError
from kbuild.inventory.load import foreign_inventory, from_translation, load_cluster
from kbuild.inventory.translation import Translation
from kbuild.inventory.yamlsource import KeyPath

# Paths in a kbuild inventory that name local files: relative ones are relative to the inventory, so
# they are made absolute for an output that may live in another folder.
PATH_KEYS = ("key_file",)


def convert(source: Path, output: Path, *, force: bool = False) -> tuple[str, list[str]]:
    """Write `output` from `source`; returns the text and the warnings. Refuses to overwrite unless `force`."""
    if output.exists() and not force:
        raise UsageError(f"{output} exists; not overwritten", hint="pass --force to replace it")
    translation = foreign_inventory(source)
    if translation is None:
        raise UsageError(f"{source} is already a kbuild inventory; nothing to convert")
    cluster = from_translation(translation, source, None, base=source if source.is_dir() else None)
    source_base = source if source.is_dir() else source.parent
    _rebase_paths(translation.native, source_base.absolute())
    text = render(translation, source, source_base)
    write_atomically(output, text)
    converted = load_cluster(output)  # what was written must load back to the same hosts
    if [_identity(h) for h in converted.hosts] != [_identity(h) for h in cluster.hosts]:
        raise UsageError(f"{output}: written, but it does not load back to the same hosts; please report this")
    return text, list(cluster.warnings)


def _identity(host: Any) -> tuple[Any, ...]:
    ssh = host.ssh
    bastion = ssh.bastion.model_dump() if ssh.bastion else None
    if bastion and bastion["key_file"]:
        bastion["key_file"] = _same_file(bastion["key_file"])
    return (host.name, str(host.address), host.role_names, ssh.host, ssh.user, ssh.port, _same_file(ssh.key_file),
            ssh.become, bastion)


def _same_file(path: str | None) -> str | None:
    return os.path.normpath(os.path.abspath(path)) if path else None


def _rebase_paths(data: Any, source_base: Path) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in PATH_KEYS and isinstance(value, str) and not value.startswith("~") \
                    and not Path(value).is_absolute():
                data[key] = str(source_base / value)  # absolute: the same file wherever the output goes
            else:
                _rebase_paths(value, source_base)


def render(translation: Translation, source: Path, base: Path) -> str:
    lines = [f"# kbuild inventory converted from {source} by `kbuild inventory convert`.",
             "# Each value's comment says where it came from. Check it with `kbuild inventory check -i <this file>`."]
    dropped = [p for p in translation.problems if p.severity == "warning"]
    if dropped:
        lines.append("# Not carried over, or worth a look:")
        for problem in dropped:
            lines.append(f"#   {_relative(problem.render(), base)}")
    order = ["cluster", "ssh", "etcd", "hosts"]
    data = dict(translation.native)
    if "name" in data.get("cluster", {}):  # the name first: it is what a reader looks for
        data["cluster"] = {"name": data["cluster"]["name"], **data["cluster"]}
    for key in sorted(data, key=lambda k: order.index(k) if k in order else len(order)):
        lines += _emit({key: data[key]}, (), 0, translation, base)
    return "\n".join(lines) + "\n"


def _emit(data: dict[str, Any], path: KeyPath, depth: int, translation: Translation, base: Path) -> list[str]:
    lines: list[str] = []
    pad = "  " * depth
    for key, value in data.items():
        here = path + (str(key),)
        comment = _comment(translation, here, base)
        if isinstance(value, dict) and value and here not in translation.origins:
            lines.append(f"{pad}{_flow(key)}:{comment}")
            lines += _emit(value, here, depth + 1, translation, base)
        else:
            lines.append(f"{pad}{_flow(key)}: {_flow(value)}{comment}")
    return lines


def _comment(translation: Translation, path: KeyPath, base: Path) -> str:
    traced = translation.origins.get(path)
    if traced is None:
        return ""
    where = _relative(str(traced.origin), base)
    if traced.variable == "groups":
        return f"  # from the host's groups ({where})"
    return f"  # {traced.variable}, {where}"


def _relative(text: str, base: Path) -> str:
    return text.replace(f"{base.resolve()}/", "").replace(f"{base}/", "")


def _flow(value: Any) -> str:
    """One value in YAML flow style, on one line (a list stays [a, b], a mapping {k: v})."""
    dumped = yaml.safe_dump([value], default_flow_style=True, width=1 << 30, sort_keys=False).strip()
    return dumped[1:-1]


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename: a reader sees the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
