"""group_vars/ and host_vars/ beside each inventory source, found and merged as Ansible's host_group_vars does."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from kbuild.inventory import textfile
from kbuild.inventory.ansible.data import Inventory, Origin, Var
from kbuild.inventory.ansible.yamlfiles import is_vault_file, load_ansible_yaml

# Ansible tries these in order and takes the first that exists; a directory is read whole.
SUFFIXES = ("", ".yml", ".yaml", ".json")
# Groups kubespray's playbooks create at run time (group_by), so a plain inventory read lacks them.
_MADE = ("; kubespray's playbooks make it from kube_control_plane and kube_node at run time, but an inventory "
         "read (ansible-inventory, kbuild) does not: add [{0}:children] with kube_control_plane and kube_node")
KUBESPRAY_MADE_GROUPS = {name: _MADE.format(name) for name in ("k8s_cluster", "k8s-cluster")}


def basedir(source: Path) -> Path:
    return source if source.is_dir() else source.parent


class VarsFiles:
    """Reads each vars file once; keeps the problems (vault files, bad shapes) in the inventory's list."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._cache: dict[Path, dict[str, Var]] = {}

    def for_group(self, name: str) -> dict[str, Var]:
        return self._merged("group_vars", name)

    def for_host(self, name: str) -> dict[str, Var]:
        return self._merged("host_vars", name)

    def _merged(self, kind: str, name: str) -> dict[str, Var]:
        merged: dict[str, Var] = {}
        if name.startswith("/"):
            return merged
        for source in self.inventory.sources:
            folder = basedir(source) / kind
            if folder.is_dir():
                for file in find_files(folder, name):
                    merged.update(self._read(file))
        return merged

    def _read(self, file: Path) -> dict[str, Var]:
        if file not in self._cache:
            self._cache[file] = self._load(file)
        return self._cache[file]

    def _load(self, file: Path) -> dict[str, Var]:
        try:
            text = textfile.read_text(file, "Ansible vars")
        except textfile.UnreadableFile as exc:
            self.inventory.error(Origin(file), exc.reason)
            return {}
        if is_vault_file(text):
            self.inventory.warn(Origin(file, 1), "encrypted with ansible-vault: kbuild cannot read it, so none of "
                                                 "its variables are used; decrypt it (ansible-vault decrypt) or set "
                                                 "what kbuild needs in another file")
            return {}
        doc = load_ansible_yaml(text)
        if file.suffix == ".json" and any(p.severity == "error" for p in doc.problems):
            try:  # JSON that PyYAML's YAML 1.1 rejects (tabs, say) is still JSON
                doc.data, doc.problems = json.loads(text), []
            except ValueError:
                pass
        for problem in doc.problems:
            self.inventory.problems.append(replace(problem, file=str(file)))
        data: Any = doc.data
        if not data:
            return {}  # Ansible skips empty files
        if not isinstance(data, dict):
            self.inventory.error(Origin(file, 1), f"a vars file must be a mapping of variable names to values, "
                                                  f"got {type(data).__name__}")
            return {}
        return {str(k): Var(v, Origin(file, doc.lines.get((str(k),)), str(k))) for k, v in data.items()}

    def warn_about_unused(self) -> None:
        """A group_vars/x.yml for no group x is ignored by Ansible without a word; kbuild says so."""
        for source in self.inventory.sources:
            for kind, known in (("group_vars", self.inventory.groups), ("host_vars", self.inventory.hosts)):
                folder = basedir(source) / kind
                if not folder.is_dir():
                    continue
                for entry in sorted(folder.iterdir()):
                    if entry.name.startswith(".") or entry.name.endswith("~"):
                        continue
                    name = entry.name if entry.is_dir() else _strip_suffix(entry.name)
                    if name is not None and name not in known:
                        what = "group" if kind == "group_vars" else "host"
                        hint = KUBESPRAY_MADE_GROUPS.get(name, "")
                        self.inventory.warn(Origin(entry), f"not used: the inventory has no {what} {name!r} "
                                                           f"(Ansible ignores it too){hint}")


def _strip_suffix(name: str) -> str | None:
    for suffix in SUFFIXES[1:]:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None if "." in name else name


def find_files(folder: Path, name: str) -> list[Path]:
    for suffix in SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.exists():
            return _dir_files(candidate) if candidate.is_dir() else [candidate]
    return []


def _dir_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            found += _dir_files(entry)
        elif entry.is_file() and (not entry.suffix or entry.suffix in SUFFIXES):
            found.append(entry)
    return found
