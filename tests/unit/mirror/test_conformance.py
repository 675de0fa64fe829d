"""The conformance build's bad input and its pieces: an e2e image table or go.mod that changed shape, no
debootstrap or a failing one, a test binary asked of a module that needs no wrapper; each one clear line,
nothing half-made left in the cache. And what it makes: names as the framework expects, stable cache keys."""

from __future__ import annotations

import io
import json
import os
import tarfile
import textwrap
from pathlib import Path

import pytest

from tests.mirror import conformance, images
from tests.mirror.errors import MirrorBuildError
from tests.mirror.gobuild import BuildCache, GoBuild, Stamp
from tests.unit.mirror.test_gotool import fake_go

MANIFEST_GO = textwrap.dedent("""\
    func initReg() RegistryList {
        registry := RegistryList{
            PromoterE2eRegistry:      "registry.k8s.io/e2e-test-images",
        }
    }
    func initImageConfigs(list RegistryList) (map[ImageID]Config, map[ImageID]Config) {
        configs[AgnhostPrev] = Config{list.PromoterE2eRegistry, "agnhost", "2.55"}
        configs[Agnhost] = Config{list.PromoterE2eRegistry, "agnhost", "2.66.1"}
        configs[BusyBox] = Config{list.PromoterE2eRegistry, "busybox", "1.37.0-2"}
        configs[GlibcDnsTesting] = Config{list.PromoterE2eRegistry, "glibc-dns-testing", "2.1.1"}
        configs[Nginx] = Config{list.PromoterE2eRegistry, "nginx", "1.27.0-2"}
        configs[NginxNew] = Config{list.PromoterE2eRegistry, "nginx", "1.28.0-2"}
        configs[Pause] = Config{list.GcRegistry, "pause", "3.10.2"}
    }
    """)


def test_image_names_are_the_ones_the_framework_asks_for():
    assert conformance.e2e_image_refs(MANIFEST_GO, "manifest.go") == {
        "agnhost": "registry.k8s.io/e2e-test-images/agnhost:2.66.1",  # the current tag, not AgnhostPrev's
        "busybox": "registry.k8s.io/e2e-test-images/busybox:1.37.0-2",
        "glibc-dns-testing": "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1",
        "nginx": "registry.k8s.io/e2e-test-images/nginx:1.27.0-2",  # Nginx, the first of the two nginx rows
    }


@pytest.mark.parametrize("broken, missing", [
    (MANIFEST_GO.replace('"busybox"', '"busybox-ng"'), "busybox"),
    (MANIFEST_GO.replace("PromoterE2eRegistry:", "E2eRegistry:"), "registry"),
])
def test_an_image_table_of_another_shape_is_one_line_naming_the_file(broken, missing):
    with pytest.raises(MirrorBuildError) as info:
        conformance.e2e_image_refs(broken, "k8s.io/kubernetes@v1.37.2/test/utils/image/manifest.go")
    message = str(info.value)
    assert message.startswith(f"k8s.io/kubernetes@v1.37.2/test/utils/image/manifest.go: no {missing} ")
    assert "update tests.mirror.conformance" in message and "\n" not in message


def test_ginkgo_s_version_comes_from_the_kubernetes_go_mod():
    gomod = {"Require": [{"Path": "github.com/onsi/gomega", "Version": "v1.38.0"},
                         {"Path": "github.com/onsi/ginkgo/v2", "Version": "v2.32.0"}]}
    assert conformance.required_version(gomod, conformance.GINKGO, "k8s.io/kubernetes@v1.37.2") == "v2.32.0"
    with pytest.raises(MirrorBuildError, match=r"^k8s.io/kubernetes@v1.37.2 requires no github.com/onsi/ginkgo/v2"):
        conformance.required_version({"Require": None}, conformance.GINKGO, "k8s.io/kubernetes@v1.37.2")


def test_the_builds_are_stamped_and_keyed_apart():
    e2e, agnhost, ginkgo = conformance.go_builds("v1.37.2", "2.66.1", "v2.32.0")
    stamp = Stamp("v1.37.2", "2026-10-27T12:01:04Z")
    assert e2e.test and "-X k8s.io/component-base/version.gitVersion=v1.37.2" in e2e.ldflags(stamp)
    assert "-X main.Version=2.66.1" in agnhost.ldflags(stamp)
    assert (ginkgo.version, ginkgo.binaries) == ("v2.32.0", {"ginkgo": "github.com/onsi/ginkgo/v2/ginkgo"})
    # A test binary is another build than the command of the same package; every other build keeps its key
    # (the cached mirror builds stay valid).
    as_command = GoBuild(e2e.name, e2e.version, e2e.modules, e2e.binaries, stamp=e2e.stamp)
    assert as_command.key("go1.26.8", stamp) != e2e.key("go1.26.8", stamp)
    assert GoBuild("tool", "v1.0.0", ("example.com/tool",), {"tool": "example.com/tool"}).key(
        "go1.26.0", Stamp("v1.0.0", "")) == "e3473f42e16e03d2"  # as before test builds existed


def test_a_test_binary_of_a_module_without_a_wrapper_is_refused_in_one_line(tmp_path):
    go = fake_go(tmp_path, "unused")
    cache = BuildCache(tmp_path / "builds", go, log=lambda line: None)
    build = GoBuild("tool.test", "v1.0.0", ("example.com/tool",), {"tool.test": "example.com/tool"}, test=True)
    with pytest.raises(MirrorBuildError, match=r"^tool.test: a test binary is built in a wrapper module; "):
        cache.ensure(build)
    assert [p.name for p in (tmp_path / "builds").iterdir()] == [".tool.test-v1.0.0.lock"]


def test_no_debootstrap_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MirrorBuildError, match=r"^debootstrap is not installed: .*apt-get install debootstrap"):
        conformance.ensure_base(tmp_path / "rootfs", log=lambda line: None)


def test_a_failed_debootstrap_names_its_log_and_leaves_no_tree(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "debootstrap"
    script.write_text("#!/bin/sh\necho 'I: Retrieving InRelease'\necho 'E: Failed getting release file' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    cache = tmp_path / "rootfs"
    with pytest.raises(MirrorBuildError) as info:
        conformance.ensure_base(cache, log=lambda line: None)
    message = str(info.value)
    assert message.startswith("debootstrap of bookworm failed (exit 1): E: Failed getting release file (full log: ")
    assert "\n" not in message
    assert [p.suffix for p in cache.iterdir()] == [".log"]  # only the kept log: no half-made tree


def test_a_tree_becomes_layer_entries_with_links_kept_and_devices_left_out(tmp_path):
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/dig").write_bytes(b"ELF")
    (root / "usr/bin/dig").chmod(0o4755)
    os.link(root / "usr/bin/dig", root / "usr/bin/host")  # a hard link: a second copy in the layer
    (root / "bin").symlink_to("usr/bin")  # a merged /usr's symlinked directory stays a link
    os.mkfifo(root / "fifo")
    entries = {e.path: e for e in conformance.tree_entries(root)}
    assert set(entries) == {"usr", "usr/bin", "usr/bin/dig", "usr/bin/host", "bin"}
    assert entries["bin"].kind == "symlink" and entries["bin"].target == "usr/bin"
    assert entries["usr/bin/host"].data == b"ELF" and entries["usr/bin/dig"].mode == 0o4755


def test_renaming_an_image_changes_its_name_and_nothing_else(tmp_path):
    original = images.image_archive("kbuild.test/busybox:1.35.0", [images.Entry("bin", kind="dir")],
                                    entrypoint=[], cmd=["sh"])
    path = tmp_path / "busybox.tar"
    path.write_bytes(original.data)
    renamed = conformance.renamed(path, "registry.k8s.io/e2e-test-images/busybox:1.37.0-2")
    assert (renamed.manifest_digest, renamed.config_digest) == (original.manifest_digest, original.config_digest)
    with tarfile.open(fileobj=io.BytesIO(renamed.data)) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        assert {m.name for m in tar.getmembers()} == {m.name for m in tarfile.open(path).getmembers()}
    assert index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": "registry.k8s.io/e2e-test-images/busybox:1.37.0-2",
        "org.opencontainers.image.ref.name": "1.37.0-2"}


def nginx_tree(root: Path) -> Path:
    """The parts of a Debian tree with nginx installed that the image changes or needs."""
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/nginx").write_bytes(b"ELF nginx")
    (root / "etc/nginx/sites-available").mkdir(parents=True)
    (root / "etc/nginx/sites-available/default").write_text("server { listen 80; listen [::]:80; }\n")
    (root / "etc/nginx/sites-enabled").mkdir()
    (root / "etc/nginx/sites-enabled/default").symlink_to("/etc/nginx/sites-available/default")
    (root / "var/log/nginx").mkdir(parents=True)
    (root / "var/log/nginx/access.log").write_text("")
    return root


def layer_and_config(archive: images.ImageArchive) -> tuple[dict[str, tarfile.TarInfo], dict[str, bytes], dict]:
    with tarfile.open(fileobj=io.BytesIO(archive.data)) as tar:
        blob = lambda digest: tar.extractfile(f"blobs/sha256/{digest[7:]}").read()  # type: ignore[union-attr]
        manifest = json.loads(blob(archive.manifest_digest))
        config = json.loads(blob(archive.config_digest))
        layer = blob(manifest["layers"][0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        data = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    return members, data, config


def test_the_nginx_image_runs_nginx_in_the_foreground_on_port_80_logging_to_the_container(tmp_path):
    ref = "registry.k8s.io/e2e-test-images/nginx:1.27.0-2"
    archive = conformance.nginx_image(ref, nginx_tree(tmp_path / "rootfs"))
    members, data, config = layer_and_config(archive)
    assert config["config"]["Cmd"] == ["nginx", "-g", "daemon off;"] and config["config"]["Entrypoint"] == []
    assert config["config"]["StopSignal"] == "SIGQUIT"  # nginx's graceful stop, as upstream's image has
    site = data["etc/nginx/sites-enabled/default"].decode()  # Debian's site (and its [::]:80) replaced
    assert "listen 80 default_server;" in site and "[::]" not in site
    assert members["var/log/nginx/access.log"].linkname == "/dev/stdout"
    assert members["var/log/nginx/error.log"].linkname == "/dev/stderr"
    assert data["usr/sbin/nginx"] == b"ELF nginx"
    # The other images' configs have no StopSignal: their digests stay as they were.
    other = images.image_archive("kbuild.test/x:1", [], entrypoint=["/x"])
    assert "StopSignal" not in layer_and_config(other)[2]["config"]


def test_a_tree_without_nginx_is_one_line_saying_what_to_remove(tmp_path):
    (tmp_path / "base/rootfs").mkdir(parents=True)
    with pytest.raises(MirrorBuildError, match=r"rootfs has no usr/sbin/nginx: .*; remove .*/base and build again$"):
        conformance.nginx_image("registry.k8s.io/e2e-test-images/nginx:1.27.0-2", tmp_path / "base/rootfs")


def test_each_debian_tree_is_keyed_by_its_packages():
    assert conformance.base_key() == conformance.base_key(conformance.BASE_PACKAGES)
    assert conformance.base_key(conformance.NGINX_PACKAGES) != conformance.base_key()
