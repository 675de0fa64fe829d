"""pyinfra inventory for the benchmark: the hosts of the driver config, logging in like the other tools."""

import os
from pathlib import Path

from bench.drivers.config import ENV_VAR, DriverConfig

_config = DriverConfig.load(Path(os.environ[ENV_VAR]))

bench = [
    (host.name, {
        "ssh_hostname": host.address,
        "ssh_user": _config.user,
        "ssh_key": _config.key_file,
        "ssh_known_hosts_file": _config.known_hosts,
        "ssh_strict_host_key_checking": "yes",
        "_sudo": True,
        "kb_address": host.address,
    })
    for host in _config.hosts
]
