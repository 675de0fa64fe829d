"""The three tools' sides of the benchmark: kbuild's engine, a pyinfra deploy, an Ansible playbook."""
