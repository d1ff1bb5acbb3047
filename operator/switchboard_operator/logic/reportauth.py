"""Authenticating capacity reports without calling the API server per report.

An SFU sends a projected ServiceAccount token (audience `switchboard.dev/capacity`) that
the API server bound to its pod. The control plane verifies the signature against the
cluster's JWKS (fetched once and cached by the adapter), then checks that the pod named
in the token is the pod the report speaks for: a pod can only report as itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from switchboard_api.contract import REPORT_TOKEN_AUDIENCE, CapacityReport

ACCEPTED_ALGORITHMS = ("RS256", "ES256")
CLOCK_SKEW_SECONDS = 30.0


class ReportAuthError(Exception):
    """The report's credentials are missing, invalid, or speak for another pod."""

    def __init__(self, message: str, *, unknown_key: bool = False) -> None:
        super().__init__(message)
        self.unknown_key = unknown_key


@dataclass(frozen=True)
class ReporterIdentity:
    """The pod a verified token was bound to."""

    namespace: str
    pod_name: str
    pod_uid: str
    service_account: str


def verify_report_token(
    token: str, jwks: Mapping[str, Any], issuer: str, now: float
) -> ReporterIdentity:
    """Verify a projected ServiceAccount token; ``now`` is Unix time from the caller."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise ReportAuthError(f"malformed token: {error}") from error
    key = _find_key(jwks, header.get("kid"))
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=list(ACCEPTED_ALGORITHMS),
            audience=REPORT_TOKEN_AUDIENCE,
            issuer=issuer,
            # Time is checked below against the caller's clock.
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["exp", "iss", "aud"],
            },
        )
    except jwt.PyJWTError as error:
        raise ReportAuthError(f"token rejected: {error}") from error
    if float(claims["exp"]) + CLOCK_SKEW_SECONDS < now:
        raise ReportAuthError("token expired")
    if "nbf" in claims and float(claims["nbf"]) - CLOCK_SKEW_SECONDS > now:
        raise ReportAuthError("token not yet valid")
    bound = claims.get("kubernetes.io") or {}
    pod = bound.get("pod") or {}
    if not pod.get("name") or not pod.get("uid"):
        raise ReportAuthError("token is not bound to a pod")
    return ReporterIdentity(
        namespace=str(bound.get("namespace", "")),
        pod_name=str(pod["name"]),
        pod_uid=str(pod["uid"]),
        service_account=str((bound.get("serviceaccount") or {}).get("name", "")),
    )


def _find_key(jwks: Mapping[str, Any], kid: object) -> jwt.PyJWK:
    for entry in jwks.get("keys", []):
        if entry.get("kid") == kid:
            try:
                return jwt.PyJWK.from_dict(dict(entry))
            except jwt.PyJWTError as error:
                raise ReportAuthError(f"unusable signing key {kid}: {error}") from error
    raise ReportAuthError(f"unknown signing key {kid!r}", unknown_key=True)


def check_reporter(identity: ReporterIdentity, report: CapacityReport) -> None:
    """Refuse a report that speaks for any pod but the token's own."""
    claimed = (report.namespace, report.pod_name, report.pod_uid)
    actual = (identity.namespace, identity.pod_name, identity.pod_uid)
    if claimed != actual:
        raise ReportAuthError(
            f"token of pod {actual[0]}/{actual[1]} (uid {actual[2]}) cannot report for "
            f"{claimed[0]}/{claimed[1]} (uid {claimed[2]})"
        )
