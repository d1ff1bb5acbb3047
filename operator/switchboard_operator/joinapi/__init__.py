"""The control plane's Join API: clients trade an API key and a room name for the SFU's
URL, a signed join token and TURN credentials (`POST /v1/namespaces/{ns}/rooms/{name}/join`).
docs/join-api.openapi.yaml specifies it."""

from switchboard_api.contract import JOIN_API_PREFIX
from switchboard_operator.joinapi.apikeys import (
    API_KEY_LABEL,
    ApiKeyStore,
    KeyPolicy,
    SecretApiKeyStore,
)
from switchboard_operator.joinapi.app import join_api_app
from switchboard_operator.joinapi.handler import JoinApiSettings
from switchboard_operator.joinapi.port import (
    NamespaceNotFound,
    PlacedRoomInfo,
    PlacementTimeout,
    RoomNotFound,
    RoomPlacements,
    RoomUnschedulable,
    TurnAccess,
)

__all__ = [
    "API_KEY_LABEL",
    "JOIN_API_PREFIX",
    "ApiKeyStore",
    "JoinApiSettings",
    "KeyPolicy",
    "NamespaceNotFound",
    "PlacedRoomInfo",
    "PlacementTimeout",
    "RoomNotFound",
    "RoomPlacements",
    "RoomUnschedulable",
    "SecretApiKeyStore",
    "TurnAccess",
    "join_api_app",
]
