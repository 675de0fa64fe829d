"""Secrets never reach diffs or logs."""

from kbuild.engine.redact import REDACTED, redact


def test_pem_private_key_block():
    text = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\nabcdef\n-----END EC PRIVATE KEY-----\n"
    out = redact(text)
    assert "MHcCAQEEIB" not in out and "abcdef" not in out and REDACTED in out
    assert "BEGIN EC PRIVATE KEY" in out


def test_pem_key_inside_a_unified_diff():
    diff = "--- a\n+++ b\n-----BEGIN PRIVATE KEY-----\n-OLDSECRET\n+-----BEGIN PRIVATE KEY-----\n+NEWSECRET\n+-----END PRIVATE KEY-----\n"
    out = redact(diff)
    assert "OLDSECRET" not in out and "NEWSECRET" not in out


def test_kubeconfig_and_encryption_fields():
    text = (
        "    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ==\n"
        "    client-certificate-data: LS0tLS1CRUdJTiBDRVJU\n"
        "        - name: key1\n          secret: c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\n"
        "token: abc.def.ghi\n"
        '{"password": "hunter2"}\n'
    )
    out = redact(text)
    for secret in ("LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ", "c2VjcmV0c2VjcmV0", "abc.def.ghi", "hunter2"):
        assert secret not in out
    # Public material stays readable.
    assert "client-certificate-data: LS0tLS1CRUdJTiBDRVJU" in out
    assert "name: key1" in out
