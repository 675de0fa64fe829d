"""kbuild's Ansible-style core: SSH transport, resources, facts, runner and reporting. Knows nothing of Kubernetes."""

from kbuild.engine.report import ConsoleSink, Event, JsonLinesSink, Reporter
from kbuild.engine.resources import Artifact, Command, Directory, File, KernelModule, Resource, Service, Sysctl
from kbuild.engine.runner import Gate, HostOutcome, HostStatus, Plan, Runner
from kbuild.engine.ssh import ConnectionPool, Jump, SSHTarget

__all__ = [
    "Artifact", "Command", "ConnectionPool", "ConsoleSink", "Directory", "Event", "File", "Gate", "HostOutcome",
    "HostStatus", "JsonLinesSink", "Jump", "KernelModule", "Plan", "Reporter", "Resource", "Runner", "SSHTarget",
    "Service", "Sysctl",
]
