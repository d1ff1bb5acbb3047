"""Per-pod loopback addresses: every pod gets its own 127.x.y.z, as it would get its own pod IP."""

from __future__ import annotations

import ipaddress

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


class AddressesExhausted(Exception):
    pass


class PodAddressPool:
    """Hands out addresses of a loopback range, round-robin so a freed address is reused last.

    Reusing an address late keeps a restarted pod from meeting the previous owner's lingering
    connections (TIME_WAIT) or clients that still cache the old pod's address.
    """

    def __init__(self, cidr: str, reserved: frozenset[str] = frozenset()) -> None:
        network = ipaddress.ip_network(cidr)
        if not isinstance(network, ipaddress.IPv4Network) or not network.subnet_of(LOOPBACK):
            raise ValueError(f"pod address range {cidr} is not inside {LOOPBACK}")
        self._hosts: list[str] = [
            str(host)
            for host in network.hosts()
            if str(host) not in reserved and not str(host).endswith((".0", ".255"))
        ]
        if not self._hosts:
            raise ValueError(f"pod address range {cidr} has no usable addresses")
        self._owners: dict[str, str] = {}
        self._cursor = 0

    def allocate(self, owner: str, preferred: str | None = None) -> str:
        """The address of `owner` (a pod UID), allocating one on first request.

        `preferred` (the address the pod already reports, e.g. after an agent restart) is
        kept when it belongs to this range and is free.
        """
        for address, holder in self._owners.items():
            if holder == owner:
                return address
        if preferred in self._hosts and preferred not in self._owners:
            self._owners[preferred] = owner
            return preferred
        for _ in range(len(self._hosts)):
            address = self._hosts[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._hosts)
            if address not in self._owners:
                self._owners[address] = owner
                return address
        raise AddressesExhausted(f"all {len(self._hosts)} pod addresses are in use")

    def release(self, owner: str) -> None:
        for address, holder in list(self._owners.items()):
            if holder == owner:
                del self._owners[address]
