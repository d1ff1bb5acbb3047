"""TURN secret rotation goes accept → mint → retire, never skipping a phase early."""

from switchboard_operator.logic.turn_rotation import step
from switchboard_turn.coturn import SecretPhase, TurnSecrets

OLD = "o" * 32
NEW = "n" * 32


def advance(secrets, now, started, requested=False):
    return step(
        secrets,
        requested=requested,
        new_secret=NEW,
        phase_started_at=started,
        now=now,
        propagation_seconds=60,
        credential_ttl_seconds=600,
    )


def test_no_request_no_change():
    result = advance(TurnSecrets(minted=OLD), now=0, started=None)
    assert not result.changed
    assert result.requeue_after is None


def test_full_rotation_waits_for_propagation_then_for_credential_expiry():
    first = advance(TurnSecrets(minted=OLD), now=100, started=None, requested=True)
    assert first.changed and first.secrets.phase is SecretPhase.ACCEPTING
    assert first.secrets.minted == OLD and first.secrets.accepted == (OLD, NEW)

    early = advance(first.secrets, now=130, started=first.phase_started_at)
    assert not early.changed and early.requeue_after == 30

    minting = advance(first.secrets, now=160, started=first.phase_started_at)
    assert minting.changed and minting.secrets.minted == NEW
    assert minting.secrets.accepted == (NEW, OLD)

    still = advance(minting.secrets, now=700, started=minting.phase_started_at)
    assert not still.changed and still.requeue_after == 60

    done = advance(minting.secrets, now=760, started=minting.phase_started_at)
    assert done.changed and done.secrets == TurnSecrets(minted=NEW)
    assert done.phase_started_at is None
