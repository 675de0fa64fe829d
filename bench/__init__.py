"""Benchmarks: kbuild's engine against pyinfra and Ansible on the same lab hosts, and kbuild bootstrap timings."""
