"""`kbuild lab`: local test hosts (systemd-nspawn machines with systemd and sshd) and the inventory for them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kbuild.cli.common import JsonOption, new_console, print_json
from kbuild.errors import UsageError
from kbuild.lab import vagrant
from kbuild.lab.image import MIRROR_ENV
from kbuild.lab.inventory import render_inventory
from kbuild.lab.lab import BOOT_TIMEOUT, STOP_TIMEOUT, Lab, LabStatus
from kbuild.lab.topology import DEFAULT_NAME, DEFAULT_SUBNET
from kbuild.lab.preflight import RUN_TOOLS, check_host
from kbuild.state import write_atomic

app = typer.Typer(
    help="Local test hosts: systemd-nspawn machines booting systemd and sshd on a bridge (needs root and Linux).",
    no_args_is_help=True,
)

NameOption = Annotated[str, typer.Option("--name", "-n", help="Lab name (machines are <name>-master-1, ...).",
                                         envvar="KBUILD_LAB_NAME")]
MirrorOption = Annotated[Optional[str], typer.Option(
    "--mirror", help="Debian mirror for building the image (default http://deb.debian.org/debian).",
    envvar=MIRROR_ENV)]
MachineArgument = Annotated[str, typer.Argument(help="Machine name, e.g. lab-worker-1 (or worker-1).")]


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _lab(name: str) -> Lab:
    """The lab called `name`, once this host is known to be able to run one (else one clear line, exit 2)."""
    check_host(RUN_TOOLS)
    return Lab(name, say=_say)


@app.command("image")
def image(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build it again even if it is cached.")] = False,
    mirror: MirrorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Build the machines' Debian image with debootstrap (once; later labs reuse the cached one)."""
    rootfs = Lab(say=_say).build_image(rebuild=rebuild, mirror=mirror)
    if as_json:
        print_json({"image": str(rootfs)})
    else:
        typer.echo(f"lab image: {rootfs}")


@app.command("up")
def up(
    masters: Annotated[int, typer.Option("--masters", help="Machines with roles etcd and control-plane.")] = 1,
    workers: Annotated[int, typer.Option("--workers", help="Machines with role worker.")] = 2,
    name: NameOption = DEFAULT_NAME,
    subnet: Annotated[str, typer.Option("--subnet", help="IPv4 network of the lab bridge; machines get .10, .11, ...")]
    = DEFAULT_SUBNET,
    inventory_out: Annotated[Optional[Path], typer.Option(
        "--inventory-out", help="Also write the inventory here (it is always written to the lab directory).")] = None,
    mirror: MirrorOption = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for every machine's sshd.")]
    = BOOT_TIMEOUT,
    artifacts_mirror: Annotated[Optional[str], typer.Option(
        "--artifacts-mirror", help="Write artifacts.mirror into the inventory: a directory or http(s) URL laid out "
                                   "like the release sites (e.g. the test mirror: python -m tests.mirror build).")]
    = None,
    preload: Annotated[Optional[list[str]], typer.Option(
        "--preload-image", help="Write artifacts.images.preload into the inventory: an image every node gets from "
                                "the mirror's archives (repeat for more).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create and boot a lab (a no-op that restarts stopped machines if it already exists) and write its inventory."""
    started = time.monotonic()
    artifacts = _artifacts_mirror(artifacts_mirror) if artifacts_mirror else None
    lab = Lab(name, say=_say)
    status = lab.up(masters, workers, subnet, mirror=mirror, timeout=timeout, inventory_out=inventory_out)
    if (artifacts is not None or preload) and lab.state is not None:
        inventory = render_inventory(lab.state.plan, lab.paths.key, artifacts, preload or ())
        write_atomic(Path(status.inventory), inventory, mode=0o600)
        if inventory_out is not None:
            write_atomic(inventory_out.absolute(), inventory, mode=0o644)
    if as_json:
        print_json(status.to_json() | {"inventory": status.inventory, "seconds": round(time.monotonic() - started, 1)})
        return
    _print_status(status, stderr=True)  # stdout carries only the inventory path: INV=$(kbuild lab up)
    _say(f"lab {name!r} is up ({time.monotonic() - started:.1f} s)")
    if inventory_out is not None:
        _say(f"inventory also written to {inventory_out.absolute()}")
    typer.echo(status.inventory)


@app.command("status")
def status(name: NameOption = DEFAULT_NAME, as_json: JsonOption = False) -> None:
    """Show the lab's machines: address, running or not, and whether sshd answers."""
    result = _lab(name).status()
    if as_json:
        print_json(result.to_json())
        return
    _print_status(result)


@app.command("stop")
def stop(machine: MachineArgument, name: NameOption = DEFAULT_NAME,
         timeout: Annotated[float, typer.Option("--timeout", help="Seconds before SIGKILL.")] = STOP_TIMEOUT,
         as_json: JsonOption = False) -> None:
    """Shut one machine down (its disk is kept; `start` boots it again)."""
    lab = _lab(name)
    full = lab.machine(machine)[0].name
    was = lab.stop(machine, timeout=timeout)
    if as_json:
        print_json({"machine": full, "stopped": was})
    else:
        typer.echo(f"{full}: stopped" if was else f"{full}: was not running")


@app.command("start")
def start(machine: MachineArgument, name: NameOption = DEFAULT_NAME,
          timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for sshd.")] = BOOT_TIMEOUT,
          as_json: JsonOption = False) -> None:
    """Boot one stopped machine and wait until its sshd answers."""
    lab = _lab(name)
    full = lab.machine(machine)[0].name
    was_stopped = lab.start(machine, timeout=timeout)
    if as_json:
        print_json({"machine": full, "started": was_stopped})
    else:
        typer.echo(f"{full}: started" if was_stopped else f"{full}: already running")


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    machine: MachineArgument,
    command: Annotated[list[str], typer.Argument(help="Command and arguments (put `--` before them).")],
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Run a command inside a machine as root, through its namespaces (no SSH; stdin is not passed)."""
    result = _lab(name).exec(machine, command, timeout=None)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    raise typer.Exit(result.returncode)


@app.command("down")
def down(name: NameOption = DEFAULT_NAME,
         timeout: Annotated[float, typer.Option("--timeout", help="Seconds for machines to shut down "
                                                                  "before SIGKILL.")] = STOP_TIMEOUT,
         as_json: JsonOption = False) -> None:
    """Stop every machine and remove the lab: processes, mounts, bridge and directory (the image stays cached)."""
    started = time.monotonic()
    report = _lab(name).down(timeout=timeout)
    if as_json:
        print_json({"lab": name, "existed": report.existed, "stopped": list(report.stopped),
                    "killed": list(report.killed), "seconds": round(time.monotonic() - started, 1)})
        return
    if not report.existed:
        typer.echo(f"no lab {name!r}; nothing to do")
        return
    if report.killed:
        _say(f"killed after {timeout:.0f} s: {', '.join(report.killed)}")
    typer.echo(f"lab {name!r} removed ({len(report.stopped)} machines stopped, "
               f"{time.monotonic() - started:.1f} s)")


def _artifacts_mirror(value: str) -> str:
    """A URL as it is; a directory made absolute, since the inventory lives elsewhere (relative paths would move)."""
    if urllib.parse.urlsplit(value).scheme in ("http", "https", "file"):
        return value
    directory = Path(value).expanduser()
    if not directory.is_dir():
        raise UsageError(f"--artifacts-mirror {value}: no such directory",
                         hint="build the test mirror with `python -m tests.mirror build` (it prints the directory), "
                              "or pass an http(s) URL")
    return str(directory.resolve())


def _print_status(status: LabStatus, *, stderr: bool = False) -> None:
    console = new_console(stderr=stderr)
    table = Table("machine", "role", "address", "state", "sshd", title=f"lab {status.name} "
                  f"({status.subnet} on {status.bridge}{'' if status.bridge_present else ', bridge missing'})")
    for m in status.machines:
        ssh = "-" if m.ssh is None else ("answers" if m.ssh else "no answer")
        table.add_row(m.name, m.role, m.address, "running" if m.running else "stopped", ssh)
    console.print(table)



@app.command("vagrant-inventory")
def vagrant_inventory(
    from_file: Annotated[Optional[Path], typer.Option(
        "--from", help="Read `vagrant ssh-config` output from this file ('-': stdin) instead of running it.")] = None,
    subnet: Annotated[str, typer.Option(
        "--subnet", help="The Vagrantfile's private network: cluster addresses are master-N .10+N, worker-N .20+N.",
        envvar=vagrant.SUBNET_ENV)] = vagrant.DEFAULT_SUBNET,
    cluster_name: Annotated[str, typer.Option("--cluster-name", help="cluster.name in the inventory.")]
    = vagrant.DEFAULT_CLUSTER,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write the inventory here, not to stdout.")]
    = None,
    vagrant_dir: Annotated[Optional[Path], typer.Option(
        "--vagrant-dir", help="Where the Vagrantfile is (default: the current directory, or VAGRANT_CWD).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a kbuild inventory for the Vagrant lab (any machine counts) from `vagrant ssh-config`."""
    network = vagrant.parse_subnet(subnet)
    if from_file is None:
        text, source = _vagrant_ssh_config(vagrant_dir), "`vagrant ssh-config`"
    elif str(from_file) == "-":
        text, source = sys.stdin.read(), "ssh-config on stdin"
    else:
        try:
            text, source = from_file.read_text(encoding="utf-8"), str(from_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{from_file}: cannot read it: {exc}") from None
    inventory = vagrant.vagrant_inventory(vagrant.parse_ssh_config(text), network, cluster_name)
    rendered = vagrant.render_vagrant_inventory(inventory, network, source)
    if as_json:
        if output is not None:
            write_atomic(output.absolute(), rendered, mode=0o644)
        print_json({"output": str(output) if output else None, "hosts": len(inventory["hosts"]), "source": source,
                    "inventory": rendered})
        return
    if output is None:
        typer.echo(rendered, nl=False)
        return
    write_atomic(output.absolute(), rendered, mode=0o644)
    _say(f"wrote {output} ({len(inventory['hosts'])} hosts); next: kbuild bootstrap -i {output}")


def _vagrant_ssh_config(directory: Optional[Path]) -> str:
    if shutil.which("vagrant") is None:
        raise UsageError("vagrant is not installed (or not on PATH)",
                         hint="install Vagrant, or pass saved `vagrant ssh-config` output with --from FILE")
    try:
        result = subprocess.run(["vagrant", "ssh-config"], cwd=directory, capture_output=True, text=True,
                                timeout=300, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"`vagrant ssh-config` could not run: {exc}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise UsageError(f"`vagrant ssh-config` failed (exit {result.returncode}): {detail or '(no output)'}",
                         hint="every machine must be up: `vagrant up`, then `vagrant status`")
    return result.stdout
