"""Every port number Switchboard listens on or configures, in one place."""

from typing import Final

SFU_SIGNALLING_PORT: Final = 7880
"""SFU public HTTP port: WebSocket signalling, WHIP/WHEP, /healthz and /readyz."""

SFU_METRICS_PORT: Final = 9880
"""SFU internal port: Prometheus /metrics only, never exposed to clients."""

SFU_PEER_PORT: Final = 7881
"""SFU internal port: lease checks between the SFU pods of a Region (docs/contract.md,
"Leases"). Reached only from the Region's other SFU pods."""

CONTROL_PLANE_HTTP_PORT: Final = 8080
"""Operator public HTTP port: the join API and /healthz, nothing else (clients reach it
through an ingress)."""

OPERATOR_INTERNAL_PORT: Final = 8443
"""Operator internal port: Prometheus /metrics (every replica, leader or standby).
Reached only from inside the cluster."""

OPERATOR_REPORT_PORT: Final = 8444
"""Operator internal port: the capacity report receiver (the leader only), HTTPS with a
certificate from the CA the operator publishes to SFU pods. Reached only by SFU pods."""

OPERATOR_HEALTH_PORT: Final = 8081
"""Operator liveness endpoint (kopf's health probe)."""

TURN_LISTENING_PORT: Final = 3478
"""TURN/STUN over UDP and TCP (RFC 8656 default)."""

TURN_TLS_PORT: Final = 5349
"""TURN over TLS/DTLS (RFC 8656 default)."""

TURN_RELAY_PORT_MIN: Final = 49152
"""Lowest relay port coturn allocates by default (start of the IANA dynamic range)."""

TURN_RELAY_PORT_MAX: Final = 65535
"""Highest relay port coturn allocates by default."""

TURN_PROMETHEUS_PORT: Final = 9641
"""coturn's built-in Prometheus exporter port."""

METRICS_PORT_NAME: Final = "metrics"
"""The container-port name every Switchboard metrics endpoint carries; the chart's
ServiceMonitor and PodMonitors select it."""
