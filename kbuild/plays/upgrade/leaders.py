"""Leader-elected controllers after a restart: the rollout goes on only once one of them leads again.

kube-controller-manager and kube-scheduler run one active instance behind a Lease in kube-system. A stopped
leader does not hand its Lease over: until it expires (15 s by default) and an instance takes it, no
controller acts. Pods a drain evicts in that window stay in their Services' EndpointSlices as ready, so
kube-proxy on every node keeps sending requests to them, after their grace period too, when they are gone.
"""

from __future__ import annotations

from kbuild.engine.runner import Gate
from kbuild.plays.control_plane import kubectl
from kbuild.plays.clusterfacts.installed import start_time_command

LEASE_NAMESPACE = "kube-system"
LEADER_TIMEOUT = 120.0  # a lease duration, a takeover and the new leader's start, with room


def leading_gate(component: str) -> Gate:
    """Some instance of `component` renewed its Lease after the one on this host started: a live leader,
    this host's or another's.

    The Lease bears the component's name (upstream's default, which kbuild keeps). The comparison is in whole
    seconds and strict: the stopped instance may have renewed in the very second the new one started, and a
    leader renews every 2 s, so a live one passes within a few seconds.
    """
    renewed = kubectl("get", "lease", "-n", LEASE_NAMESPACE, component, "-o", "jsonpath={.spec.renewTime}")
    check = (f'since=$({start_time_command(component)}) && renewed=$({renewed}) && [ -n "$renewed" ] '
             f'&& [ "$(date -d "$renewed" +%s)" -gt "${{since#@}}" ]')
    return Gate(f"{component} leads (its Lease renewed since the restart)", command=check, timeout=LEADER_TIMEOUT,
                always=True, unit=component)
