"""A successful join: the client gets where to connect, a token the SFU itself accepts for
that pod, and TURN credentials coturn would accept, and the room is placed as asked."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import jwt
import pytest
from joinapi_fakes import (
    OLD_KID,
    OPS_KEY,
    SIGNING_KID,
    TEAM_KEY,
    TURN_SECRET,
    TURN_TTL_SECONDS,
    TURN_URIS,
)

from switchboard_api.contract import JoinTokenClaims
from switchboard_api.defaults import JOIN_TOKEN_TTL_SECONDS
from switchboard_api.geo import GeoLocation
from switchboard_operator.joinapi.models import JoinResponse
from switchboard_sfu.jointokens import JoinKeyring, JoinTokenVerifier, PodIdentity
from switchboard_sfu.refusals import JoinRefused, RefusalCode
from switchboard_turn.credentials import USERNAME_SEPARATOR, turn_password


def _sfu_verifier(keys_dir: Path, public_pems: dict[str, str], pod: str, uid: str):
    """The SFU's own verifier, with the keys the operator publishes mounted as files."""
    for filename, pem in public_pems.items():
        (keys_dir / filename).write_text(pem)
    return JoinTokenVerifier(JoinKeyring(keys_dir), PodIdentity(name=pod, uid=uid))


async def test_a_join_returns_where_to_connect_and_a_token_the_sfu_accepts(join_api, tmp_path):
    response = await join_api.join(body={"identity": "alice"})

    assert response.status == 200
    joined = JoinResponse.model_validate(await response.json())
    placed = join_api.placements.rooms["team-a/standup"]
    assert (joined.room, joined.region, joined.pod, joined.pod_uid, joined.url) == (
        "team-a/standup",
        placed.region,
        placed.pod,
        placed.pod_uid,
        placed.url,
    )
    assert joined.identity == "alice"

    verifier = _sfu_verifier(
        tmp_path, join_api.placements.keys.public_pems(), joined.pod, joined.pod_uid
    )
    claims = verifier.verify(joined.token, now_unix=join_api.clock.wall_now)
    assert claims.sub == "alice"
    assert claims.room == "team-a/standup"
    assert claims.grants.publish and claims.grants.subscribe and claims.grants.data
    assert claims.exp == int(join_api.clock.wall_now) + JOIN_TOKEN_TTL_SECONDS
    assert joined.expires_at == dt.datetime.fromtimestamp(claims.exp, dt.UTC)
    assert claims.term == join_api.placements.term  # the acting leader's (C1)


async def test_the_token_is_signed_with_the_current_key_and_bound_to_the_pod(join_api, tmp_path):
    joined = JoinResponse.model_validate(await (await join_api.join()).json())

    assert jwt.get_unverified_header(joined.token)["kid"] == SIGNING_KID != OLD_KID
    other_pod = _sfu_verifier(
        tmp_path, join_api.placements.keys.public_pems(), joined.pod, "a-later-incarnation"
    )
    with pytest.raises(JoinRefused) as refused:
        other_pod.verify(joined.token, now_unix=join_api.clock.wall_now)
    assert refused.value.code is RefusalCode.WRONG_POD


async def test_the_token_expires_after_its_ttl_at_the_sfu(join_api, tmp_path):
    joined = JoinResponse.model_validate(await (await join_api.join()).json())
    verifier = _sfu_verifier(
        tmp_path, join_api.placements.keys.public_pems(), joined.pod, joined.pod_uid
    )

    with pytest.raises(JoinRefused) as refused:
        verifier.verify(
            joined.token, now_unix=join_api.clock.wall_now + JOIN_TOKEN_TTL_SECONDS + 60
        )
    assert refused.value.code is RefusalCode.TOKEN_EXPIRED


async def test_requested_grants_are_what_the_token_grants(join_api, tmp_path):
    body = {"identity": "viewer-7", "grants": {"publish": False, "data": False}}
    joined = JoinResponse.model_validate(await (await join_api.join(body=body)).json())

    claims = JoinTokenClaims.model_validate(
        jwt.decode(joined.token, options={"verify_signature": False})
    )
    assert (claims.grants.publish, claims.grants.subscribe, claims.grants.data) == (
        False,
        True,
        False,
    )


async def test_ice_servers_carry_turn_credentials_coturn_accepts(join_api):
    joined = JoinResponse.model_validate(await (await join_api.join()).json())

    assert len(joined.ice_servers) == 1
    server = joined.ice_servers[0]
    assert server.urls == list(TURN_URIS)
    expiry, _, identity = (server.username or "").partition(USERNAME_SEPARATOR)
    assert identity == "alice"
    assert int(expiry) == int(join_api.clock.wall_now) + TURN_TTL_SECONDS
    assert server.credential == turn_password(TURN_SECRET, server.username or "")


async def test_a_region_without_turn_gets_no_ice_servers(join_api):
    join_api.placements.turn.clear()

    response = await join_api.join()

    assert response.status == 200
    assert (await response.json())["iceServers"] == []


async def test_the_client_location_and_room_options_reach_placement(join_api):
    body = {
        "identity": "bob",
        "location": {"latitude": 48.85, "longitude": 2.35},
        "region": "eu-west",
        "maxParticipants": 25,
    }

    response = await join_api.join(name="all-hands", body=body)

    assert response.status == 200
    [call] = join_api.placements.calls
    assert (call.namespace, call.name, call.create) == ("team-a", "all-hands", True)
    assert call.location == GeoLocation(latitude=48.85, longitude=2.35)
    assert call.region_hint == "eu-west"
    assert call.max_participants == 25
    assert call.timeout == pytest.approx(0.05)


async def test_an_existing_room_can_be_joined_without_creating(join_api):
    await join_api.join(name="daily")
    response = await join_api.join(name="daily", body={"identity": "carol", "create": False})

    assert response.status == 200
    assert join_api.placements.calls[-1].create is False


async def test_a_key_for_every_namespace_joins_anywhere(join_api):
    response = await join_api.join(namespace="team-b", key=OPS_KEY)

    assert response.status == 200
    assert (await response.json())["room"] == "team-b/standup"


async def test_logs_name_the_room_identity_and_key_but_never_secrets(join_api, caplog):
    caplog.set_level(logging.INFO, logger="switchboard_operator.joinapi")
    joined = await (await join_api.join(body={"identity": "dora"})).json()
    await join_api.join(key="not-a-key-at-all-0123456789")

    granted = [r.getMessage() for r in caplog.records if "join granted" in r.getMessage()]
    assert len(granted) == 1
    assert "room=team-a/standup" in granted[0]
    assert "identity=dora" in granted[0]
    assert "key=team-a" in granted[0]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "join refused code=unauthenticated" in everything
    assert TEAM_KEY not in everything
    assert "not-a-key-at-all" not in everything
    assert joined["token"] not in everything
    assert joined["iceServers"][0]["credential"] not in everything


async def test_a_pod_gets_tokens_only_from_keys_it_reports_holding(join_api, tmp_path):
    """Mid-rotation: the newest key signs a pod's tokens only once that pod's reports list
    it; until then its tokens are signed with the newest key it does hold."""
    pod = "sfu-eu-west-7d9f-abcde"
    join_api.placements.held[pod] = [OLD_KID]
    before = JoinResponse.model_validate(await (await join_api.join()).json())
    assert jwt.get_unverified_header(before.token)["kid"] == OLD_KID

    join_api.placements.held[pod] = [OLD_KID, SIGNING_KID]
    after = JoinResponse.model_validate(await (await join_api.join()).json())
    assert jwt.get_unverified_header(after.token)["kid"] == SIGNING_KID
    # The pod verifies both with the keys it holds.
    verifier = _sfu_verifier(
        tmp_path, join_api.placements.ring.public_pems(0.0), after.pod, after.pod_uid
    )
    for joined in (before, after):
        assert verifier.verify(joined.token, now_unix=join_api.clock.wall_now).sub == "alice"
