"""YAML as Ansible loads it: its `!vault` and `!unsafe` tags understood, duplicate keys a warning, lines kept."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from kbuild.inventory.yamlsource import YamlDocument, load_yaml

VAULT_HEADER = "$ANSIBLE_VAULT;"


@dataclass(frozen=True)
class VaultValue:
    """An inline `!vault` value: kbuild cannot decrypt it, so it only names where it is."""

    ciphertext: str

    def __str__(self) -> str:
        return "<vault-encrypted>"


class AnsibleYamlLoader(yaml.SafeLoader):
    """SafeLoader plus the two tags Ansible adds to YAML."""


def _vault(loader: yaml.SafeLoader, node: yaml.Node) -> VaultValue:
    return VaultValue(str(loader.construct_scalar(node)))  # type: ignore[arg-type]


def _unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    # !unsafe only stops Ansible from templating the value; the value itself is plain data
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


AnsibleYamlLoader.add_constructor("!vault", _vault)
AnsibleYamlLoader.add_constructor("!unsafe", _unsafe)


def is_vault_file(text: str) -> bool:
    return text.lstrip().startswith(VAULT_HEADER)


def load_ansible_yaml(text: str) -> YamlDocument:
    return load_yaml(text, loader=AnsibleYamlLoader, duplicates="warning", string_keys=False)
