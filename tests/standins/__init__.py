"""Stand-ins for the Kubernetes binaries no registry here carries (test code, never shipped)."""
