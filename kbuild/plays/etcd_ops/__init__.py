"""etcd operations shared by snapshot, restore and status: snapshot files, command lines, member probes."""
