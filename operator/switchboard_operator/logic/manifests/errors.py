"""The error a Region's manifests cannot be built with: the adapter shows it as `Degraded`."""


class ManifestError(ValueError):
    """The Region (or the operator's configuration) cannot be turned into workloads.

    `reason` is a CamelCase condition reason, `field` the offending field's path, and the
    message says what to change.
    """

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.reason = reason
        self.field = field
        self.message = message
