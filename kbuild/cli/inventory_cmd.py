"""`kbuild inventory`: validate an inventory and show what it resolves to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kbuild.cli.common import InventoryOption, JsonOption, StateDirOption, load, new_console, print_json, print_warnings
from kbuild.inventory import Cluster
from kbuild.inventory.convert import convert
from kbuild.inventory.export import native_document

app = typer.Typer(help="Validate inventories and show the resolved hosts and settings.", no_args_is_help=True)


@app.command("check")
def check(inventory: InventoryOption, state_dir: StateDirOption = None, as_json: JsonOption = False) -> None:
    """Validate the inventory and print the resolved hosts, roles and settings (defaults applied)."""
    cluster = load(inventory, state_dir)
    data = resolved(cluster)
    if as_json:
        print_json(data)
        return
    console = new_console()
    console.print(f"inventory {cluster.inventory_path} is valid: cluster {cluster.name!r}, "
                  f"{len(cluster.hosts)} hosts")
    table = Table("host", "address", "roles", "ssh", "arch")
    for host in cluster.hosts:
        ssh = host.ssh
        via = f" via {ssh.bastion.host}" if ssh.bastion else ""
        table.add_row(host.name, str(host.address), ", ".join(host.role_names),
                      f"{ssh.user}@{ssh.host}:{ssh.port}{' (sudo)' if ssh.become else ''}{via}", host.arch)
    console.print(table)
    settings = Table("setting", "value", show_header=False)
    for key, value in _flatten(data["cluster"]).items():
        settings.add_row(key, str(value))
    for key in ("state_dir", "known_hosts", "host_key_policy"):
        settings.add_row(key, str(data[key]))
    console.print(settings)


@app.command("convert")
def convert_command(
    source: Annotated[Path, typer.Argument(help="An Ansible/kubespray inventory (file or directory), "
                                                "or a k0sctl.yaml.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The kbuild inventory to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a kbuild inventory from an Ansible/kubespray inventory or a k0sctl.yaml, commented with each
    value's origin and what was dropped."""
    _, warnings = convert(source, output, force=force)
    if as_json:
        print_json({"source": str(source), "output": str(output), "warnings": list(warnings)})
        return
    print_warnings(warnings)
    typer.echo(f"wrote {output}; check it with: kbuild inventory check -i {output}")


def resolved(cluster: Cluster) -> dict[str, Any]:
    """The inventory after defaults, as plain JSON-able data."""
    settings = cluster.settings.model_dump(mode="json")
    settings["api_server_url"] = cluster.api_server_url
    settings["kubernetes_service_ip"] = str(cluster.kubernetes_service_ip)
    settings["cluster_dns"] = str(cluster.cluster_dns_ip)
    return {
        "cluster": settings,
        "pki": cluster.pki.model_dump(mode="json"),
        "etcd": cluster.etcd.model_dump(mode="json"),
        "artifacts": cluster.artifacts.model_dump(mode="json"),
        "state_dir": str(cluster.state_dir),
        "known_hosts": str(cluster.known_hosts),
        "host_key_policy": cluster.host_key_policy.value,
        "hosts": [
            {
                "name": h.name,
                "address": str(h.address),
                "roles": h.role_names,
                "arch": h.arch,
                "ssh": {
                    "host": h.ssh.host, "port": h.ssh.port, "user": h.ssh.user, "key_file": h.ssh.key_file,
                    "become": h.ssh.become,
                    "bastion": h.ssh.bastion.model_dump(mode="json") if h.ssh.bastion else None,
                },
                "labels": h.labels,
                "taints": list(h.taints),
            }
            for h in cluster.hosts
        ],
        "warnings": list(cluster.warnings),
        # The same cluster as a kbuild inventory: `inventory check -i` this JSON file loads it back.
        "inventory": native_document(cluster),
    }


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
