"""The two-phase rotation of a Region's TURN shared secret, as a pure step function.

A user asks for a rotation by setting the Region annotation `switchboard.dev/rotate-turn-secret`
to a new value. Then: (1) coturn accepts the next secret alongside the current one; after
``propagation_seconds`` (Secret volume refresh + the sync sidecar) (2) credentials are
minted with the new secret while the old one is still accepted; after the credential TTL
(every credential minted with the old secret has expired) (3) the old secret is retired.
Live relays keep working throughout: coturn checks a credential only on allocation/refresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard_turn.coturn import SecretPhase, TurnSecrets

ROTATE_ANNOTATION = "switchboard.dev/rotate-turn-secret"
"""Region annotation: a new value requests a rotation of the TURN shared secret."""


@dataclass(frozen=True)
class RotationStep:
    secrets: TurnSecrets
    changed: bool
    phase_started_at: float | None
    """When the current phase began (Unix time); None in the steady state."""
    requeue_after: float | None = None
    event: str | None = None


def step(
    secrets: TurnSecrets,
    *,
    requested: bool,
    new_secret: str,
    phase_started_at: float | None,
    now: float,
    propagation_seconds: float,
    credential_ttl_seconds: float,
) -> RotationStep:
    """Advance the rotation by at most one phase. ``new_secret`` is used only to begin one."""
    started = now if phase_started_at is None else phase_started_at
    if secrets.phase is SecretPhase.STEADY:
        if not requested:
            return RotationStep(secrets, changed=False, phase_started_at=None)
        return RotationStep(
            secrets.begin_rotation(new_secret),
            changed=True,
            phase_started_at=now,
            requeue_after=propagation_seconds,
            event="TURN secret rotation started: servers now accept the next secret",
        )
    if secrets.phase is SecretPhase.ACCEPTING:
        due = started + propagation_seconds
        if now < due:
            return RotationStep(secrets, False, started, requeue_after=due - now)
        return RotationStep(
            secrets.start_minting(),
            changed=True,
            phase_started_at=now,
            requeue_after=credential_ttl_seconds,
            event="TURN secret rotation: credentials are now minted with the new secret",
        )
    due = started + credential_ttl_seconds
    if now < due:
        return RotationStep(secrets, False, started, requeue_after=due - now)
    return RotationStep(
        secrets.retire_previous(),
        changed=True,
        phase_started_at=None,
        event="TURN secret rotation finished: the previous secret is retired",
    )


@dataclass(frozen=True)
class TurnAccess:
    """A Region's TURN servers and what credentials for them are minted with (the join
    API hands clients credentials for them)."""

    uris: tuple[str, ...]
    """`turn:`/`turns:` URIs of the region's TURN service."""
    secret: bytes = field(repr=False)
    """The shared secret credentials are currently minted with (never logged)."""
    credential_ttl_seconds: int
    """Lifetime of minted credentials (the Region's TURN credential TTL)."""
