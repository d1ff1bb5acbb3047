"""What the agent knows about one container at a moment, in the shape of a ContainerStatus."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Waiting reasons, as the kubelet spells them where one exists.
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
RUN_CONTAINER_ERROR = "RunContainerError"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"

# Terminated reasons.
COMPLETED = "Completed"
ERROR = "Error"
START_ERROR = "StartError"
OOM_KILLED = "OOMKilled"


def timestamp(moment: datetime) -> str:
    """RFC 3339 with second precision, the form the API server stores for metav1.Time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": self.reason}
        if self.message:
            body["message"] = self.message
        return {"waiting": body}


@dataclass(frozen=True)
class Running:
    started_at: datetime

    def to_api(self) -> dict[str, Any]:
        return {"running": {"startedAt": timestamp(self.started_at)}}


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    started_at: datetime | None
    finished_at: datetime
    container_id: str | None = None
    signal: int | None = None
    message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "finishedAt": timestamp(self.finished_at),
        }
        if self.started_at is not None:
            body["startedAt"] = timestamp(self.started_at)
        if self.container_id:
            body["containerID"] = self.container_id
        if self.signal is not None:
            body["signal"] = self.signal
        if self.message:
            body["message"] = self.message
        return {"terminated": body}


State = Waiting | Running | Terminated


@dataclass(frozen=True)
class ContainerSnapshot:
    name: str
    image: str
    state: State
    last_state: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str | None = None
    image_id: str = ""

    @property
    def ever_ran(self) -> bool:
        return self.last_state is not None or not isinstance(self.state, Waiting)

    def to_api(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "state": self.state.to_api(),
            "lastState": self.last_state.to_api() if self.last_state else {},
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _terminated_from_api(body: dict[str, Any]) -> Terminated:
    finished = parse_time(body.get("finishedAt")) or datetime.now(UTC)
    return Terminated(
        exit_code=int(body.get("exitCode", 0)),
        reason=str(body.get("reason") or (COMPLETED if not body.get("exitCode") else ERROR)),
        started_at=parse_time(body.get("startedAt")),
        finished_at=finished,
        container_id=body.get("containerID"),
        signal=body.get("signal"),
        message=body.get("message"),
    )


def snapshot_from_api(status: dict[str, Any]) -> ContainerSnapshot:
    """A ContainerStatus as the API stored it: what a restarted agent knows of a container
    its predecessor ran (restarts, readiness, when it started)."""
    state = status.get("state") or {}
    current: State
    if "running" in state:
        started = parse_time((state["running"] or {}).get("startedAt"))
        current = Running(started or datetime.now(UTC))
    elif "terminated" in state:
        current = _terminated_from_api(state["terminated"] or {})
    else:
        waiting = state.get("waiting") or {}
        current = Waiting(str(waiting.get("reason") or CONTAINER_CREATING), waiting.get("message"))
    last = (status.get("lastState") or {}).get("terminated")
    return ContainerSnapshot(
        name=status["name"],
        image=status.get("image", ""),
        state=current,
        last_state=_terminated_from_api(last) if last else None,
        restart_count=int(status.get("restartCount", 0)),
        ready=bool(status.get("ready")),
        started=bool(status.get("started")),
        container_id=status.get("containerID"),
        image_id=status.get("imageID", ""),
    )
