"""Resource types: desired state that the runner compares with facts and applies where it differs."""

from kbuild.engine.resources.base import Action, Payload, Resource, ResourceError
from kbuild.engine.resources.files import Absent, Artifact, Directory, File
from kbuild.engine.resources.images import ContainerImage
from kbuild.engine.resources.system import Command, KernelModule, Route, RoutesPruned, Service, Sysctl

__all__ = [
    "Absent", "Action", "Artifact", "Command", "ContainerImage", "Directory", "File", "KernelModule", "Payload", "Resource",
    "ResourceError", "Route", "RoutesPruned", "Service", "Sysctl",
]
