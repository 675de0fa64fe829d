"""Fact: etcd's /version on the local member, {"etcdserver":"3.5.1","etcdcluster":"3.5.0"}: the cluster version
(the lowest minor every member runs) is what an etcd upgrade must respect."""

from __future__ import annotations

import json

from kbuild import layout
from kbuild.engine.session import Query
from kbuild.engine.shell import command
from kbuild.pki.certlist import remote_path
from kbuild.plays.clusterfacts.version import Version

# curl takes an option's value as the next word (it has no --option=value form).
COMMAND = command("curl", "-fsS", "--max-time", "5", "--cacert", remote_path("etcd-ca.crt"),
                  "--cert", remote_path("etcd-healthcheck-client.crt"),
                  "--key", remote_path("etcd-healthcheck-client.key"),
                  f"https://127.0.0.1:{layout.ETCD_CLIENT_PORT}/version")


def parse(text: str) -> Version | None:
    """The cluster version; None while the cluster has not settled on one ("not_decided") or for other output."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return Version.find(str(data.get("etcdcluster", ""))) if isinstance(data, dict) else None


QUERY = Query("etcd /version", COMMAND, parse)
