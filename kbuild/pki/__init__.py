"""The cluster PKI: CAs, certificates, kubeconfigs, service-account keys and the encryption config (cryptography).

Generated locally into <state_dir>/ (see kbuild.pki.store for the layout), driven by one table
(kbuild.pki.certlist). The plays use `host_files`; the bootstrap and `kbuild certs` use `ensure`,
`check` and `ensure(renew=...)`.
"""

from kbuild.pki.certlist import CERTS, KUBECONFIGS, CertSpec, KubeconfigSpec
from kbuild.pki.deploy import PKIFile, host_files
from kbuild.pki.errors import PKIError
from kbuild.pki.generate import Action, EnsureReport, Outcome, ensure
from kbuild.pki.cert_check import CertStatus, CheckReport, check

__all__ = [
    "CERTS",
    "KUBECONFIGS",
    "Action",
    "CertSpec",
    "CertStatus",
    "CheckReport",
    "EnsureReport",
    "KubeconfigSpec",
    "Outcome",
    "PKIError",
    "PKIFile",
    "check",
    "ensure",
    "host_files",
]
