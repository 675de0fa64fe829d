"""Rendering: every unit and config file a host gets, from templates/ and the per-version flag tables."""

from kbuild.render.env import TemplateError
from kbuild.render.facts import node_pod_cidr
from kbuild.render.files import RenderedFile, host_files, units_for
from kbuild.render.flags import FlagError, api_labels, kubelet_labels

__all__ = [
    "FlagError",
    "RenderedFile",
    "TemplateError",
    "api_labels",
    "host_files",
    "kubelet_labels",
    "node_pod_cidr",
    "units_for",
]
