"""The format of a join API key: a Secret in the operator's namespace, labelled
`switchboard.dev/api-key=true`, whose data keys say what the key may do."""

from typing import Final

from switchboard_api.resources import GROUP

API_KEY_LABEL: Final = f"{GROUP}/api-key"
"""Label that marks a Secret as a join API key (value `true`)."""
API_KEY_LABEL_VALUE: Final = "true"


class ApiKeyData:
    """Data keys of an API key Secret."""

    KEY: Final = "key"
    """The secret value clients send as `Authorization: Bearer <key>`."""
    NAMESPACES: Final = "namespaces"
    """Comma-separated room namespaces the key may join, or `*` for all."""
    CREATE: Final = "create"
    """`true` if the key may create Rooms (default `false`)."""
    RATE_PER_SECOND: Final = "ratePerSecond"
    """Sustained requests per second (absent: the join API's default)."""
    BURST: Final = "burst"
    """Requests allowed at once above the sustained rate (absent: the join API's default)."""


ALL_NAMESPACES: Final = "*"
"""`namespaces` value for a key that may join rooms in every namespace."""
