"""`kbuild artifacts`: fill the binary cache, show what each host needs, make and import offline bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kbuild.artifacts import (
    ArtifactStore,
    cache_dir_for,
    cluster_binaries,
    default_cache_dir,
    host_binaries,
    use_bundle,
    write_bundle,
)
from kbuild.artifacts.hosts import cluster_image_releases, host_images
from kbuild.artifacts.images import image_release
from kbuild.cli.common import InventoryOption, JsonOption, StateDirOption, load, print_json
from kbuild.imageref import ImageRef

app = typer.Typer(help="Download, verify and cache cluster binaries and image archives; offline bundles.",
                  no_args_is_help=True)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


@app.command("fetch")
def fetch(inventory: InventoryOption, state_dir: StateDirOption = None, as_json: JsonOption = False) -> None:
    """Download and verify every binary and image archive the inventory's hosts need into the cache."""
    cluster = load(inventory, state_dir)
    store = ArtifactStore.for_cluster(cluster)
    files: list[dict[str, Any]] = []
    for binary in cluster_binaries(cluster):
        sha, _ = store.ensure_binary(binary)
        files.append({"name": binary.name, "component": binary.component, "version": binary.version,
                      "arch": binary.arch, "sha256": sha})
        if not as_json:
            typer.echo(f"{binary.name:<24} {binary.component} {binary.version} linux/{binary.arch}  sha256:{sha}")
    for release in cluster_image_releases(cluster):
        sha, _ = store.ensure_release(release)
        files.append({"name": release.image, "component": "image", "version": None, "arch": release.arch,
                      "sha256": sha})
        if not as_json:
            typer.echo(f"{release.image:<24} image linux/{release.arch}  sha256:{sha}")
    downloaded = sum(size for _, size in store.stats.downloaded)
    if as_json:
        print_json({"cache_dir": str(store.cache.root), "origin": store.origin.description, "files": files,
                    "downloaded": len(store.stats.downloaded), "downloaded_bytes": downloaded,
                    "checksum_files": store.stats.checksum_files})
        return
    typer.echo(f"{len(files)} files verified in {store.cache.root} from {store.origin.description}: "
               f"{len(store.stats.downloaded)} downloaded ({_size(downloaded)}), "
               f"{store.stats.checksum_files} checksum files read")


@app.command("list")
def list_(
    inventory: InventoryOption,
    state_dir: StateDirOption = None,
    as_json: JsonOption = False,
    urls: Annotated[bool, typer.Option("--urls", help="Print only the official URLs of the release and checksum "
                                                      "files, one per line (feed them to `wget -x` to make a "
                                                      "mirror; image archives, which have none, are not among "
                                                      "them).")] = False,
) -> None:
    """Show what each host needs, with sha256 and cache state. Reads nothing from the network."""
    cluster = load(inventory, state_dir)
    if urls:
        seen: dict[str, None] = {}
        for release in (b.release for b in cluster_binaries(cluster)):
            seen.setdefault(release.url)
            seen.setdefault(release.checksum_url)
        typer.echo("\n".join(seen))
        return
    store = ArtifactStore.for_cluster(cluster, offline=True)
    hosts: list[dict[str, Any]] = []
    for host in cluster.hosts:
        files = []
        for binary in host_binaries(cluster.settings.versions, host):
            sha, path = store.cached_binary(binary)
            state = "cached" if path is not None else "missing" if sha is not None else "unknown"
            files.append({"name": binary.name, "component": binary.component, "version": binary.version,
                          "arch": binary.arch, "remote_path": str(binary.remote_path), "sha256": sha,
                          "state": state, "url": store.origin.url(binary.release.url), "member": binary.member})
        for image in host_images(store, cluster, host, prepare=False):
            state = "cached" if image.local_path is not None else "missing" if image.sha256 else "unknown"
            files.append({"name": image.ref, "component": "image", "version": ImageRef.parse(image.ref).tag,
                          "arch": host.arch, "remote_path": None, "sha256": image.sha256, "state": state,
                          "url": store.url_of(image_release(image.ref, host.arch).url), "member": None})
        hosts.append({"name": host.name, "roles": host.role_names, "arch": host.arch, "files": files})
    if as_json:
        print_json({"cache_dir": str(store.cache.root), "origin": store.origin.description,
                    "transfer": cluster.artifacts.transfer, "hosts": hosts})
        return
    typer.echo(f"cache {store.cache.root}; files from {store.origin.description}; "
               f"transfer {cluster.artifacts.transfer}")
    # Columns as wide as their longest entry: image references are much longer than binary names.
    rows = [(item["name"], f"{item['component']} {item['version']}") for h in hosts for item in h["files"]]
    name_width = max((len(name) for name, _ in rows), default=0)
    release_width = max((len(release) for _, release in rows), default=0)
    for entry in hosts:
        typer.echo(f"{entry['name']} ({', '.join(entry['roles'])}; {entry['arch']})")
        for item in entry["files"]:
            sha = f"sha256:{item['sha256']}" if item["sha256"] else "sha256 not known yet"
            release = f"{item['component']} {item['version']}"
            typer.echo(f"  {item['name']:<{name_width}} {release:<{release_width}} {item['state']:<8} {sha}")
    states = [f["state"] for h in hosts for f in h["files"]]
    if any(state != "cached" for state in states):
        typer.echo(f"run `{cluster.command('artifacts fetch')}` to download and verify what is missing")


@app.command("bundle")
def bundle(
    inventory: InventoryOption,
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle file to write (a tar).")],
    state_dir: StateDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write one archive with every binary and image archive the inventory needs (fetched and verified first),
    for offline installs."""
    cluster = load(inventory, state_dir)
    manifest = write_bundle(cluster, output)
    if as_json:
        print_json({"bundle": str(output), "files": len(manifest.files), "size": output.stat().st_size})
        return
    typer.echo(f"wrote {output}: {len(manifest.files)} files, {_size(output.stat().st_size)}; "
               f"install from it with `kbuild artifacts import {output}`")


@app.command("import")
def import_(
    bundle_file: Annotated[Path, typer.Argument(metavar="BUNDLE", help="A bundle made by `kbuild artifacts bundle`.")],
    inventory: Annotated[Path | None, typer.Option(
        "-i", "--inventory", help="Check the bundle covers this inventory and use its cache directory.",
        envvar="KBUILD_INVENTORY")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Cache to fill (default: the inventory's, else ~/.cache/kbuild/artifacts).")] = None,
    state_dir: StateDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a bundle and load it into the artifact cache; later runs then need no network."""
    cluster = load(inventory, state_dir) if inventory is not None else None
    manifest = use_bundle(bundle_file, cluster, cache_dir=cache_dir)
    where = cache_dir_for(cluster) if cluster is not None and cache_dir is None else (cache_dir or default_cache_dir())
    if as_json:
        print_json({"bundle": str(bundle_file), "files": len(manifest.files), "cache_dir": str(where)})
        return
    typer.echo(f"imported {len(manifest.files)} files from {bundle_file} into {where}")
