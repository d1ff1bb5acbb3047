"""TLS for Switchboard's servers: certificates served from files (a mounted `kubernetes.io/tls`
Secret), re-read when the files change, so a renewed certificate needs no restart."""

from switchboard_tls.reloading import CertificateFiles, ReloadingCertificate, TlsConfigError

__all__ = ["CertificateFiles", "ReloadingCertificate", "TlsConfigError"]
