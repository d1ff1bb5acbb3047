"""The trust an SFU pod places in its control plane: the CA certificate the operator
publishes (a mounted ConfigMap), never the image's trust store, so only a server holding
a certificate from that CA receives the pod's reports and its report token."""

import logging
import ssl
from pathlib import Path

log = logging.getLogger(__name__)


class ReportTrust:
    """A client TLS context that verifies with the CA in `ca_file` alone, rebuilt when the
    file changes (a republished CA reaches the kubelet's copy without a restart)."""

    def __init__(self, ca_file: Path) -> None:
        self._file = ca_file
        self._seen: bytes | None = None
        self._context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        """The context for the next report. Raises OSError or ssl.SSLError while the file
        cannot be read or holds no certificate, unless an earlier one did (then that one
        keeps being used)."""
        try:
            pem = self._file.read_bytes()
            if pem != self._seen:
                # With cadata, the default context trusts that CA and nothing else.
                context = ssl.create_default_context(cadata=pem.decode("ascii"))
                self._seen, self._context = pem, context
                log.info("report ca loaded path=%s", self._file)
        except (OSError, ssl.SSLError, ValueError) as error:
            if self._context is None:
                raise
            log.warning("report ca not reloaded path=%s error=%s", self._file, error)
        assert self._context is not None  # raised above otherwise
        return self._context
