"""pyinfra deploy for the benchmark: the same workload as kbuild's plan and the Ansible playbook."""

import os
from pathlib import Path

from pyinfra import host
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from bench import workload as wl
from bench.drivers.config import ENV_VAR, DriverConfig

config = DriverConfig.load(Path(os.environ[ENV_VAR]))
workload = config.workload
me = wl.Host(host.name, host.data.kb_address)
owner = {"user": "root", "group": "root"}

files.directory(name="config directory", path=wl.CONF_DIR, mode=f"{wl.CONF_DIR_MODE:o}", **owner)
configs = [
    files.template(name=f"config file {i:02d}", src=str(wl.TEMPLATE), dest=wl.conf_path(i),
                   mode=f"{wl.CONF_MODE:o}", **owner, **workload.variables(me, i))
    for i in range(workload.files)
]
files.put(name="binary", src=config.blob, dest=wl.BLOB_PATH, mode=f"{wl.BLOB_MODE:o}", **owner)
unit = files.put(name="unit", src=str(wl.UNIT_SOURCE), dest=wl.UNIT_PATH, mode=f"{wl.UNIT_MODE:o}", **owner)
systemd.daemon_reload(name="reload units", _if=unit.did_change)
started = systemd.service(name="service enabled and running", service=f"{wl.SERVICE}.service",
                          running=True, enabled=True)
# A handler, pyinfra style: restart when its config or unit changed, unless it was only just started.
systemd.service(name="restart on change", service=f"{wl.SERVICE}.service", running=True, restarted=True,
                _if=[any_changed(configs[0], unit), started.did_not_change])
server.sysctl(name="sysctl", key=wl.SYSCTL_KEY, value=wl.SYSCTL_VALUE, persist=True, persist_file=wl.SYSCTL_FILE)
