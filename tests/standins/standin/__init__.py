"""Stand-ins for the Kubernetes control plane and node binaries (test code; stdlib + yaml only)."""
