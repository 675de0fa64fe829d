"""The template environment: user templates override shipped ones, and errors say where and what."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kbuild import layout
from kbuild.cli import run
from kbuild.errors import ExitCode, KbuildError
from kbuild.inventory import Cluster
from kbuild.render import TemplateError, host_files
from kbuild.render.env import shipped_templates_dir

from .conftest import MakeCluster, files_by_path

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


def with_templates(make_cluster: MakeCluster, folder: Path, templates: dict[str, str]) -> Cluster:
    """A cluster whose templates_dir is `folder`, made to hold these templates (file name -> text)."""
    folder.mkdir()
    for name, text in templates.items():
        (folder / name).write_text(text)
    return make_cluster(templates_dir=str(folder))


def test_shipped_templates_are_found_in_a_source_checkout() -> None:
    assert shipped_templates_dir() == TEMPLATES


def test_every_shipped_template_is_used(cluster) -> None:
    # Scheduled etcd snapshots are opt-in: their templates are used once etcd.backup.enabled is set.
    backup = cluster.etcd.backup.model_copy(update={"enabled": True})
    full = dataclasses.replace(cluster, etcd=cluster.etcd.model_copy(update={"backup": backup}))
    # The partials: macros, and the pod-routes unit's lines (rendered once per cluster for every unit).
    used = {"_macros.j2", "_pod_routes.j2"} | {f.template for h in full.hosts for f in host_files(full, h)}
    assert {p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.j2")} == used  # subdirectories too


def test_a_user_template_overrides_the_shipped_one(make_cluster: MakeCluster, tmp_path: Path) -> None:
    user = tmp_path / "my-templates"
    user.mkdir()
    (user / "kube-proxy-config.yaml.j2").write_text("# mine for {{ host.name }}\nmode: {{ cluster.proxy_mode }}\n")
    cluster = make_cluster(templates_dir="my-templates")  # relative to the inventory's directory
    mine = files_by_path(cluster, "w1")[str(layout.KUBE_PROXY_CONFIG)]
    assert mine.content == "# mine for w1\nmode: iptables\n"
    assert mine.template == "kube-proxy-config.yaml.j2"
    # Everything not overridden still comes from the shipped templates.
    assert "KubeletConfiguration" in files_by_path(cluster, "w1")[str(layout.KUBELET_CONFIG)].content


def test_a_user_macro_file_overrides_every_unit(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = with_templates(make_cluster, tmp_path / "t", {
        "_macros.j2": "{% macro header() %}# custom{% endmacro %}\n"
                      "{% macro exec_start(binary, flags) %}ExecStart={{ binary }}{% endmacro %}\n"})
    unit = files_by_path(cluster, "w1")[str(layout.unit_path("kubelet"))].content
    assert unit.startswith("# custom\n")
    assert f"ExecStart={layout.binary_path('kubelet')}\n" in unit


def test_missing_variable_names_template_line_and_variable(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = with_templates(make_cluster, tmp_path / "t", {
        "kubelet-config.yaml.j2": "a: 1\nb: {{ cluster.domain }}\nc: {{ node.no_such_thing }}\n"})
    with pytest.raises(TemplateError) as info:
        host_files(cluster, cluster.host("w1"))
    err = info.value
    assert (err.template, err.line, err.variable) == ("kubelet-config.yaml.j2", 3, "no_such_thing")
    assert err.file == str(tmp_path / "t" / "kubelet-config.yaml.j2")
    assert str(err).startswith(f"{err.file}:3: undefined variable 'no_such_thing' (template kubelet-config.yaml.j2)")


def test_missing_top_level_variable(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = with_templates(make_cluster, tmp_path / "t",
                             {"cni-loopback.conf.j2": "{\n\n  \"x\": \"{{ nothing_here }}\"\n}\n"})
    with pytest.raises(TemplateError, match=r"cni-loopback\.conf\.j2:3: undefined variable 'nothing_here'") as info:
        host_files(cluster, cluster.host("w1"))
    assert "top-level variables are:" in str(info.value) and "paths" in str(info.value)


def test_missing_variable_inside_a_macro_points_into_the_macro_file(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = with_templates(make_cluster, tmp_path / "t", {
        "_macros.j2": "{% macro header() %}\n# {{ oops }}\n{% endmacro %}\n"
                      "{% macro exec_start(b, f) %}x{% endmacro %}\n"})
    with pytest.raises(TemplateError) as info:
        host_files(cluster, cluster.host("m1"))
    assert (info.value.file, info.value.line, info.value.variable) == (str(tmp_path / "t" / "_macros.j2"), 2, "oops")
    assert info.value.template == "etcd.service.j2"


def test_syntax_error_names_file_and_line(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = with_templates(make_cluster, tmp_path / "t", {"audit-policy.yaml.j2": "ok\n{% if %}\n"})
    with pytest.raises(TemplateError, match=r"audit-policy\.yaml\.j2:2: syntax error: ") as info:
        host_files(cluster, cluster.host("m1"))
    assert info.value.line == 2


def test_missing_included_template(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = with_templates(make_cluster, tmp_path / "t",
                             {"audit-policy.yaml.j2": "a: 1\n{% include 'nowhere.j2' %}\n"})
    with pytest.raises(TemplateError, match=r"audit-policy\.yaml\.j2:2: template 'nowhere\.j2' not found"):
        host_files(cluster, cluster.host("m1"))


def test_a_failing_expression_is_located(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = with_templates(make_cluster, tmp_path / "t", {"audit-policy.yaml.j2": "a: {{ 1 // 0 }}\n"})
    with pytest.raises(TemplateError, match=r"audit-policy\.yaml\.j2:1: ZeroDivisionError"):
        host_files(cluster, cluster.host("m1"))


def test_templates_dir_must_exist(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(templates_dir="does-not-exist")
    with pytest.raises(KbuildError, match=r"cluster\.templates_dir: .*does-not-exist is not a directory"):
        host_files(cluster, cluster.host("w1"))


def test_the_cli_prints_one_clean_line_not_a_traceback(make_cluster: MakeCluster, tmp_path: Path, capsys) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "kube-scheduler-config.yaml.j2").write_text("x: {{ cluster.nope }}\n")
    make_cluster(templates_dir="t")
    code = run(["render", "-i", str(tmp_path / "inventory.yaml"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT
    assert "kube-scheduler-config.yaml.j2:1: undefined variable 'nope'" in err
    assert "Traceback" not in err and "jinja2" not in err
