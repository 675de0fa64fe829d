"""Rendering: every unit and config file a host gets, from templates/ and the per-version flag tables."""

from kbuild.render.env import TemplateError
from kbuild.render.host_values import node_pod_cidr
from kbuild.render.files import (
    PodRoute,
    RenderedFile,
    gets_pod_routes,
    host_files,
    pod_routes,
    pod_routes_role,
    units_for,
)
from kbuild.render.flags import FlagError, api_labels, kubelet_labels

__all__ = [
    "FlagError",
    "PodRoute",
    "RenderedFile",
    "TemplateError",
    "api_labels",
    "gets_pod_routes",
    "host_files",
    "kubelet_labels",
    "node_pod_cidr",
    "pod_routes",
    "pod_routes_role",
    "units_for",
]
