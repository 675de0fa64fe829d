"""Local test hosts: systemd-nspawn machines booting real systemd and sshd on a bridge, from a cached Debian image."""

from kbuild.lab.errors import LabError, LabNotFound, LabUnavailable
from kbuild.lab.lab import Lab, LabStatus, MachineStatus
from kbuild.lab.topology import DEFAULT_SUBNET, LabPlan, MachineSpec, make_plan

__all__ = [
    "DEFAULT_SUBNET",
    "Lab",
    "LabError",
    "LabNotFound",
    "LabPlan",
    "LabStatus",
    "LabUnavailable",
    "MachineSpec",
    "MachineStatus",
    "make_plan",
]
