"""The report receiver's certificates: a CA, and a serving certificate for the names SFU
pods use, reissued when it is due and only then."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509

from switchboard_operator.logic.report_certs import (
    RENEW_BEFORE,
    SERVING_LIFETIME,
    ca_usable,
    issue_serving,
    new_ca,
    reissue_reason,
    serving_names,
)

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
NAMES = ("switchboard-operator-reports.sb.svc", "switchboard-operator-reports.sb.svc.cluster.local")


def test_names_are_the_report_urls_host_in_every_form_sfu_pods_may_use():
    url = "https://switchboard-operator-reports.sb.svc:8444/v1/capacity/reports"
    assert serving_names(url) == NAMES
    assert serving_names("https://127.0.0.1:9000/v1/capacity/reports") == ("127.0.0.1",)
    assert serving_names("https://cp.example.com/v1/capacity/reports") == ("cp.example.com",)


def test_a_serving_certificate_verifies_with_its_ca_alone():
    ca = new_ca(NOW)
    serving = issue_serving(ca, ("127.0.0.1", *NAMES), NOW)
    cert = x509.load_pem_x509_certificate(serving.cert_pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == list(NAMES)
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    # What TLS clients will check: a server certificate under a CA certificate.
    with tempfile.TemporaryDirectory() as directory:
        chain, key = Path(directory) / "tls.crt", Path(directory) / "tls.key"
        chain.write_bytes(serving.cert_pem)
        key.write_bytes(serving.key_pem)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(chain, key)
    assert ca_usable(ca)


def test_a_certificate_serves_on_until_it_is_due():
    ca = new_ca(NOW)
    serving = issue_serving(ca, NAMES, NOW)
    assert reissue_reason(serving, ca, NAMES, NOW) is None
    nearly_due = NOW + SERVING_LIFETIME - RENEW_BEFORE - dt.timedelta(hours=1)
    assert reissue_reason(serving, ca, NAMES, nearly_due) is None
    due = NOW + SERVING_LIFETIME - RENEW_BEFORE + dt.timedelta(hours=1)
    assert reissue_reason(serving, ca, NAMES, due) is not None


@pytest.mark.parametrize("change", ["names", "ca", "unreadable"])
def test_a_certificate_for_other_names_or_from_another_ca_is_reissued(change):
    ca = new_ca(NOW)
    serving = issue_serving(ca, NAMES, NOW)
    if change == "names":
        assert reissue_reason(serving, ca, ("127.0.0.1",), NOW) is not None
    elif change == "ca":
        assert reissue_reason(serving, new_ca(NOW), NAMES, NOW) is not None
    else:
        broken = type(serving)(b"", b"")
        assert reissue_reason(broken, ca, NAMES, NOW) == "unreadable"
