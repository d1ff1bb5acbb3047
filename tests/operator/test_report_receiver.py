"""The capacity report receiver: it authenticates before it reads a body, reads at most
MAX_REPORT_BYTES, refuses reports while placements are not yet restored (start-up, a
new leader), since an answer from an empty picture would tell every SFU to end every room
it serves, and refuses every report from a pod the operator did not create."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec

from fixtures.leadership import StaticLeadership
from fixtures.operator_cache import cluster_cache
from fixtures.placement_builders import POD_NAMESPACE, report, usage
from fixtures.waiting import eventually
from switchboard_api.contract import REPORT_TOKEN_AUDIENCE, CapacityReport, ReportResponse
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.metrics import OperatorMetrics
from switchboard_operator.reconcilers.capacity_feed import CapacityFeed
from switchboard_operator.reportapi import receiver as reports
from switchboard_operator.reportapi.receiver import MAX_REPORT_BYTES, ReportReceiver
from switchboard_operator.reportapi.refusals import ReportRefusals

ISSUER = "https://kubernetes.default.svc"
KID = "sa-key-1"
ANSWER_TIMEOUT = 10.0
"""Generous: only a receiver that waits for a body it should not read runs into it."""


def capacity_report() -> CapacityReport:
    live = usage("rooms/live", participants=3, load=2.0)
    return report("sfu-0", sequence=1, load=2.0, participants=3, rooms=(live,))


class StaticJwks:
    """The cluster's service-account signing keys, as the JwksCache holds them."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks = {"keys": [{**public, "kid": KID, "alg": "ES256", "use": "sig"}]}
        self.issuer = ISSUER

    async def refresh(self, force: bool = False) -> bool:
        return False

    def token(self, pod: str, uid: str, *, key: ec.EllipticCurvePrivateKey | None = None) -> str:
        """A projected token bound to `pod`, as the API server issues it."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": [REPORT_TOKEN_AUDIENCE],
            "exp": now + 600,
            "iat": now,
            "nbf": now,
            "sub": f"system:serviceaccount:{POD_NAMESPACE}:sfu",
            "kubernetes.io": {
                "namespace": POD_NAMESPACE,
                "pod": {"name": pod, "uid": uid},
                "serviceaccount": {"name": "sfu", "uid": "sa-uid"},
            },
        }
        return jwt.encode(claims, key or self.key, algorithm="ES256", headers={"kid": KID})


REGION = "eu"
ROGUE_UID = "uid-sfu-rogue"


def sfu_pod(name: str, uid: str) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": POD_NAMESPACE,
            "uid": uid,
            "labels": {"switchboard.dev/region": REGION},
        },
        "status": {"phase": "Running"},
    }


@dataclass
class Receiver:
    server: TestServer
    jwks: StaticJwks
    restored: asyncio.Event
    """What the Room reconciler sets once the first list of Rooms is in and their
    placements are restored."""
    metrics: OperatorMetrics
    events: list[tuple[dict, str, str, str]]
    picture: CapacityPicture
    leadership: StaticLeadership

    def refused(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "switchboard_capacity_reports_refused_total", {"reason": reason}
        )
        assert value is not None
        return value

    async def raw(self, head: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send request `head` and `body` as they are, then read the answer without
        sending anything more (the connection stays open, as a slow sender's would)."""
        reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        try:
            writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
            await writer.drain()
            async with asyncio.timeout(ANSWER_TIMEOUT):
                status_line = await reader.readline()
                headers = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in headers.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            async with asyncio.timeout(ANSWER_TIMEOUT):
                content = await reader.readexactly(length)
            return int(status_line.split()[1]), content
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    jwks = StaticJwks()
    restored = asyncio.Event()
    leadership = StaticLeadership(term=3)
    picture = CapacityPicture()
    # sfu-0 is a pod the operator created; sfu-rogue copies its labels (and, in a
    # cluster, its ownerReferences and ServiceAccount) but not its recorded UID.
    regions = [{"metadata": {"name": REGION}, "spec": {"namespace": POD_NAMESPACE}}]
    pods = {REGION: [sfu_pod("sfu-0", "uid-sfu-0"), sfu_pod("sfu-rogue", ROGUE_UID)]}
    feed = CapacityFeed(
        cluster_cache(regions=regions, sfu_pods=pods, untrusted=[ROGUE_UID]),
        picture,
        capacity_appeared=lambda: None,
        pod_lost=lambda: None,
        ready=restored.is_set,
        leadership=leadership,
    )
    metrics = OperatorMetrics()
    events: list[tuple[dict, str, str, str]] = []

    async def post_event(obj, type_: str, reason: str, message: str) -> None:
        events.append((dict(obj), type_, reason, message))

    refusals = ReportRefusals(metrics, post_event)
    app = web.Application()
    receiver = ReportReceiver(jwks, feed, refusals, metrics)  # type: ignore[arg-type]
    app.router.add_post("/report", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Receiver(server, jwks, restored, metrics, events, picture, leadership)
    finally:
        await server.close()
        await refusals.stop()


def head(token: str | None, **headers: str) -> str:
    lines = ["POST /report HTTP/1.1", "Host: control-plane", "Content-Type: application/json"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\n".join(lines) + "\n"


def own_token(receiver: Receiver) -> str:
    sent = capacity_report()
    return receiver.jwks.token(sent.pod_name, sent.pod_uid)


async def test_reports_are_refused_until_placements_are_restored(receiver) -> None:
    body = capacity_report().model_dump_json(by_alias=True).encode()
    request = head(own_token(receiver), Content_Length=str(len(body)))
    status, answer = await receiver.raw(request, body)
    assert status == 503
    assert b'"starting"' in answer

    receiver.restored.set()
    status, answer = await receiver.raw(request, body)
    assert status == 200
    assert b'"acknowledged":true' in answer.replace(b" ", b"")

    registry = receiver.metrics.registry
    refused = {"reason": "starting"}
    assert registry.get_sample_value("switchboard_capacity_reports_refused_total", refused) == 1
    accepted = {"region": capacity_report().region, "outcome": "accepted"}
    assert registry.get_sample_value("switchboard_capacity_reports_total", accepted) == 1


async def report_as_sfu(receiver: Receiver, sent: CapacityReport) -> tuple[int, bytes]:
    body = sent.model_dump_json(by_alias=True).encode()
    token = receiver.jwks.token(sent.pod_name, sent.pod_uid)
    return await receiver.raw(head(token, Content_Length=str(len(body))), body)


async def test_an_acknowledgement_carries_the_term_and_records_what_the_pod_confirmed(
    receiver,
) -> None:
    receiver.restored.set()
    status, answer = await report_as_sfu(receiver, capacity_report())
    assert status == 200
    assert ReportResponse.model_validate_json(answer).term == 3
    # The next report says that acknowledgement arrived: the pod can witness (C3).
    status, _ = await report_as_sfu(
        receiver,
        capacity_report().model_copy(update={"sequence": 2, "acked_sequence": 1, "term": 3}),
    )
    assert status == 200
    state = receiver.picture.pod(f"{POD_NAMESPACE}/sfu-0")
    assert state is not None and state.acks.witnesses_after(0.0, time.time() + 1)


async def test_a_replica_outside_its_acting_window_answers_not_leading_and_applies_nothing(
    receiver,
) -> None:
    receiver.restored.set()
    receiver.leadership.acting_now = False
    status, answer = await report_as_sfu(receiver, capacity_report())
    assert status == 503 and b'"not_leading"' in answer
    assert receiver.picture.pod(f"{POD_NAMESPACE}/sfu-0") is None


async def test_a_report_of_a_newer_term_makes_the_replica_step_down(receiver) -> None:
    receiver.restored.set()
    newer = capacity_report().model_copy(update={"term": 4})
    status, answer = await report_as_sfu(receiver, newer)
    assert status == 503 and b'"not_leading"' in answer
    assert receiver.leadership.stepped_down and not receiver.leadership.acting()
    assert receiver.picture.pod(f"{POD_NAMESPACE}/sfu-0") is None


async def test_a_caller_without_a_valid_token_is_refused_before_its_body_is_read(
    receiver, monkeypatch
) -> None:
    parsed: list[bytes] = []
    original = CapacityReport.model_validate_json
    monkeypatch.setattr(
        reports.CapacityReport,
        "model_validate_json",
        lambda data, **kw: parsed.append(data) or original(data, **kw),
    )
    forged = receiver.jwks.token("sfu-0", "uid-sfu-0", key=ec.generate_private_key(ec.SECP256R1()))
    # A body that never arrives: a receiver that reads before it authenticates waits for it.
    status, answer = await receiver.raw(head(forged, Content_Length="1000"), b'{"podName": ')
    assert status == 401
    assert b'"unauthenticated"' in answer
    # Nor does a malformed body tell an unauthenticated caller which fields it got wrong.
    status, answer = await receiver.raw(head("not-a-token", Content_Length="9"), b"[1, 2, 3]")
    assert (status, b"podName" in answer) == (401, False)
    status, _ = await receiver.raw(head(None, Content_Length="9"), b"[1, 2, 3]")
    assert status == 401
    assert parsed == []


async def test_a_report_over_the_size_cap_is_refused_before_it_is_read(receiver) -> None:
    receiver.restored.set()
    token = own_token(receiver)
    # Declared too large: refused at once, nothing of the body sent.
    status, answer = await receiver.raw(head(token, Content_Length=str(MAX_REPORT_BYTES + 1)))
    assert status == 413
    assert b'"too_large"' in answer
    # Chunked (no declared length): refused as soon as the cap is passed, while the sender
    # is still sending.
    chunk = b"x" * (64 * 1024)
    chunks = b"".join(
        f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        for _ in range(MAX_REPORT_BYTES // len(chunk) + 1)
    )
    status, answer = await receiver.raw(head(token, Transfer_Encoding="chunked"), chunks)
    assert status == 413


async def test_a_token_cannot_report_for_another_pod(receiver) -> None:
    receiver.restored.set()
    body = capacity_report().model_dump_json(by_alias=True).encode()
    other = receiver.jwks.token("sfu-1", "uid-sfu-1")
    status, answer = await receiver.raw(head(other, Content_Length=str(len(body))), body)
    assert status == 403
    assert b"cannot report for" in answer


async def test_a_pod_the_operator_did_not_create_is_refused_and_recorded(receiver) -> None:
    """Its token is valid and bound to it, and it carries the SFU labels: still not one of
    the pods the operator created, so its report never reaches the capacity picture."""
    receiver.restored.set()
    sent = report("sfu-rogue", uid=ROGUE_UID, region=REGION, sequence=1, capacity=1000.0)
    body = sent.model_dump_json(by_alias=True).encode()
    token = receiver.jwks.token("sfu-rogue", ROGUE_UID)
    for _ in range(3):
        status, answer = await receiver.raw(head(token, Content_Length=str(len(body))), body)
        assert status == 403
        assert b'"untrusted_pod"' in answer
    assert receiver.picture.pod(f"{POD_NAMESPACE}/sfu-rogue") is None
    assert receiver.refused("untrusted_pod") == 3
    # One Warning Event on the pod, not one per report (posted by a task of its own).
    await eventually(lambda: receiver.events, 10, "the refusal's Event")
    assert [(obj["metadata"]["uid"], type_, why) for obj, type_, why, _ in receiver.events] == [
        (ROGUE_UID, "Warning", "CapacityReportRefused")
    ]
    # The pod the operator created reports as before.
    trusted = capacity_report().model_dump_json(by_alias=True).encode()
    status, _ = await receiver.raw(
        head(own_token(receiver), Content_Length=str(len(trusted))), trusted
    )
    assert status == 200
    assert receiver.refused("untrusted_pod") == 3
