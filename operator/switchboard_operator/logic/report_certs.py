"""The report receiver's certificates: a private CA the operator keeps, and a serving
certificate it issues for the names SFU pods reach the receiver by (the report URL's host).

Pure: the clock is an argument, the keys are data. The adapter that keeps them in a Secret
and serves them is `reportapi/tls.py`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME: Final = dt.timedelta(days=3650)
"""The CA outlives any install it is likely to see; SFU pods trust nothing else."""
SERVING_LIFETIME: Final = dt.timedelta(days=90)
RENEW_BEFORE: Final = dt.timedelta(days=30)
"""A serving certificate this close to its end is reissued (a renewal a month early)."""
_BACKDATE = dt.timedelta(minutes=5)
"""Certificates start a little in the past: a client clock slightly behind still accepts."""
CA_COMMON_NAME: Final = "switchboard report receiver CA"


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, PEM."""

    cert_pem: bytes
    key_pem: bytes


def serving_names(report_url: str) -> tuple[str, ...]:
    """The names the serving certificate must carry: the report URL's host, and for a
    Service name (`<svc>.<ns>.svc`) the fully qualified one too."""
    host = urlsplit(report_url).hostname or ""
    names = [host]
    if host.endswith(".svc"):
        names.append(f"{host}.cluster.local")
    return tuple(names)


def new_ca(now: dt.datetime) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    cert = (
        _builder(name, name, key.public_key(), now, CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def issue_serving(ca: KeyPair, names: Sequence[str], now: dt.datetime) -> KeyPair:
    """A serving certificate for `names` (DNS names or IP addresses), signed by `ca`."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the report CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), now, SERVING_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def ca_usable(ca: KeyPair) -> bool:
    """Whether `ca` is a readable certificate with its EC key."""
    try:
        x509.load_pem_x509_certificate(ca.cert_pem)
        key = serialization.load_pem_private_key(ca.key_pem, password=None)
    except ValueError:
        return False
    return isinstance(key, ec.EllipticCurvePrivateKey)


def reissue_reason(
    serving: KeyPair, ca: KeyPair, names: Sequence[str], now: dt.datetime
) -> str | None:
    """Why `serving` must be reissued (None: it serves on): it is unreadable, names other
    hosts, was not signed by `ca`, or ends within RENEW_BEFORE."""
    try:
        cert = x509.load_pem_x509_certificate(serving.cert_pem)
        key = serialization.load_pem_private_key(serving.key_pem, password=None)
    except ValueError:
        return "unreadable"
    if key.public_key() != cert.public_key():
        return "the key does not match the certificate"
    if not _issued_by(cert, x509.load_pem_x509_certificate(ca.cert_pem)):
        return "not issued by the report CA"
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    if set(sans) != set(_general_names(names)):
        return f"names differ from {','.join(names)}"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"ends {cert.not_valid_after_utc.isoformat()}"
    return None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + lifetime)
    )


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return general


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
