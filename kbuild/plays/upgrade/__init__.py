"""Rolling upgrades: versions read from the hosts, the skew policy as data, the plan, and its rolling apply."""

from kbuild.plays.upgrade.guard import UpgradeRefused, bootstrap_phase
from kbuild.plays.upgrade.observe import survey
from kbuild.plays.upgrade.plan import Step, UpgradePlan, build
from kbuild.plays.upgrade.policy import PolicyFinding, check_plan
from kbuild.plays.upgrade.rolling import run
from kbuild.plays.upgrade.stop import UpgradeStopped
from kbuild.plays.upgrade.running import HostVersions, Installed, Version, detect

__all__ = [
    "PolicyFinding",
    "HostVersions",
    "Installed",
    "Step",
    "UpgradePlan",
    "UpgradeRefused",
    "UpgradeStopped",
    "Version",
    "bootstrap_phase",
    "build",
    "check_plan",
    "detect",
    "run",
    "survey",
]
