"""coturn as Switchboard configures it: the peer filter, the secret rotation states, the
arguments, and a real turnserver (Debian's coturn) started with exactly those arguments."""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from fixtures.waiting import wait_for
from switchboard_api.contract import SfuMounts
from switchboard_turn.coturn import (
    DEFAULT_DENIED_PEER_CIDRS,
    MINTED_SECRET_KEY,
    USERDB_SECRET_TABLE_DDL,
    CoturnSettings,
    InvalidTurnSecret,
    SecretPhase,
    TlsFiles,
    TurnSecrets,
    admits_loopback,
    cidr_to_range,
    turnserver_args,
    userdb_secret_rows,
)

OLD = "old-secret-aaaaaaaaaaaaaaaa"
NEW = "new-secret-bbbbbbbbbbbbbbbb"
REALM = "turn.switchboard.test"


def _settings(**overrides) -> CoturnSettings:
    base = CoturnSettings(
        realm=REALM,
        listening_port=3478,
        relay_port_min=49152,
        relay_port_max=65535,
        userdb_path="/var/lib/coturn/turndb",
        pidfile_path="/tmp/turnserver.pid",
    )
    return replace(base, **overrides)


# -- peer filter -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "expected"),
    [
        ("10.244.0.0/16", "10.244.0.0-10.244.255.255"),
        ("10.244.3.7/16", "10.244.0.0-10.244.255.255"),
        ("192.0.2.9/32", "192.0.2.9"),
        ("127.0.0.0/8", "127.0.0.0-127.255.255.255"),
        ("fd00::/8", "fd00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001:db8::1/128", "2001:db8::1"),
    ],
)
def test_cidrs_become_coturn_address_ranges(cidr, expected):
    assert cidr_to_range(cidr) == expected


def test_default_denied_ranges_cover_private_loopback_link_local_and_metadata_addresses():
    denied = [ipaddress.ip_network(c) for c in DEFAULT_DENIED_PEER_CIDRS]
    for address in [
        "10.1.2.3",
        "172.20.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fd12::1",
        "::ffff:10.0.0.1",
    ]:
        ip = ipaddress.ip_address(address)
        assert any(ip in net for net in denied if net.version == ip.version), address
    assert not any(ipaddress.ip_address("203.0.113.5") in net for net in denied[:10])


def test_only_an_allowed_loopback_range_turns_on_loopback_peers():
    assert admits_loopback(["127.0.0.1/32"])
    assert admits_loopback(["::1/128"])
    assert admits_loopback(["0.0.0.0/0"])
    assert not admits_loopback(["10.244.0.0/16", "fd00::/8"])
    assert "--allow-loopback-peers" not in turnserver_args(_settings())
    allowed = turnserver_args(_settings(allowed_peer_cidrs=("127.0.0.1/32",)))
    assert "--allow-loopback-peers" in allowed
    assert "--allowed-peer-ip=127.0.0.1" in allowed


# -- secrets ---------------------------------------------------------------------------


def test_two_phase_rotation_accepts_then_mints_then_retires():
    steady = TurnSecrets(minted=OLD)
    accepting = steady.begin_rotation(NEW)
    minting = accepting.start_minting()
    done = minting.retire_previous()
    assert [s.phase for s in (steady, accepting, minting, done)] == [
        SecretPhase.STEADY,
        SecretPhase.ACCEPTING,
        SecretPhase.MINTING,
        SecretPhase.STEADY,
    ]
    assert [s.minted for s in (steady, accepting, minting, done)] == [OLD, OLD, NEW, NEW]
    assert accepting.accepted == (OLD, NEW)
    assert minting.accepted == (NEW, OLD)
    assert done.accepted == (NEW,)


def test_rotation_steps_out_of_order_are_refused():
    with pytest.raises(InvalidTurnSecret, match="Steady"):
        TurnSecrets(minted=OLD).start_minting()
    with pytest.raises(InvalidTurnSecret):
        TurnSecrets(minted=OLD).begin_rotation(NEW).begin_rotation(NEW)
    with pytest.raises(InvalidTurnSecret, match="change"):
        TurnSecrets(minted=OLD).begin_rotation(OLD)


def test_the_minted_secret_is_the_file_the_sfu_reads():
    assert Path(SfuMounts.TURN_SECRET_FILE).name == MINTED_SECRET_KEY
    minting = TurnSecrets(minted=OLD).begin_rotation(NEW).start_minting()
    assert minting.files() == {MINTED_SECRET_KEY: NEW, "previous": OLD}
    assert TurnSecrets.from_files(minting.files()) == minting


@pytest.mark.parametrize(
    "value", ["short", "x" * 257, "has space in the middle!", "tab\there-xxxxxxxxx"]
)
def test_unusable_secrets_are_refused_without_showing_them(value):
    with pytest.raises(InvalidTurnSecret) as caught:
        TurnSecrets(minted=value)
    assert value not in str(caught.value)


def test_secrets_never_show_in_their_repr():
    secrets = TurnSecrets(minted=OLD).begin_rotation(NEW)
    assert OLD not in repr(secrets)
    assert NEW not in repr(secrets)


def test_userdb_rows_list_every_accepted_secret_for_the_realm():
    rows = userdb_secret_rows(REALM, TurnSecrets(minted=OLD).begin_rotation(NEW))
    assert rows == [(REALM, OLD), (REALM, NEW)]


# -- arguments -------------------------------------------------------------------------


def test_arguments_configure_rest_api_auth_from_the_userdb_and_no_config_file():
    args = turnserver_args(_settings())
    assert args[0] == "-n"
    for expected in [
        "--use-auth-secret",
        "--userdb=/var/lib/coturn/turndb",
        f"--realm={REALM}",
        "--listening-port=3478",
        "--min-port=49152",
        "--max-port=65535",
        "--no-cli",
        "--fingerprint",
        "--no-tlsv1",
        "--no-tlsv1_1",
        "--log-file=stdout",
        "--no-multicast-peers",
        "--no-tls",
    ]:
        assert expected in args
    assert not [a for a in args if "static-auth-secret" in a]
    assert "--prometheus" not in args


def test_every_default_denied_range_is_passed_before_the_allowed_ones():
    args = turnserver_args(_settings(allowed_peer_cidrs=("10.244.0.0/16",)))
    denied = [a for a in args if a.startswith("--denied-peer-ip=")]
    assert len(denied) == len(DEFAULT_DENIED_PEER_CIDRS)
    assert "--denied-peer-ip=10.0.0.0-10.255.255.255" in denied
    assert args[-1] == "--allowed-peer-ip=10.244.0.0-10.244.255.255"


def test_tls_listener_uses_the_mounted_certificate():
    tls = TlsFiles(
        port=443, cert_path="/etc/coturn/tls/tls.crt", key_path="/etc/coturn/tls/tls.key"
    )
    args = turnserver_args(_settings(tls=tls))
    assert "--tls-listening-port=443" in args
    assert "--cert=/etc/coturn/tls/tls.crt" in args
    assert "--pkey=/etc/coturn/tls/tls.key" in args
    assert "--no-tls" not in args
    assert _settings(tls=tls).lowest_port == 443


def test_prometheus_only_when_asked():
    args = turnserver_args(_settings(prometheus=True))
    assert "--prometheus" in args
    assert "--prometheus-port=9641" in args


def test_listening_ip_is_also_the_relay_ip():
    args = turnserver_args(_settings(listening_ip="$(POD_IP)"))
    assert "--listening-ip=$(POD_IP)" in args
    assert "--relay-ip=$(POD_IP)" in args


# -- a real turnserver -----------------------------------------------------------------

TURNSERVER = shutil.which("turnserver")
UCLIENT = shutil.which("turnutils_uclient")
PEER = shutil.which("turnutils_peer")
real_coturn = pytest.mark.skipif(
    not (TURNSERVER and UCLIENT and PEER), reason="Debian's coturn is not installed"
)
DEADLINE_SECONDS = 30


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(condition, what: str) -> None:
    wait_for(condition, DEADLINE_SECONDS, what, interval=0.05)


def _accepts_tcp(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _udp_bound(port: int) -> bool:
    """Whether something listens on UDP `port` (the echo peer must be up before a relay)."""
    wanted = f":{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1].endswith(wanted) for line in list(table)[1:])


def _write_userdb(path: Path, secrets: TurnSecrets) -> None:
    """What the secret sync sidecar does: replace the realm's rows in one transaction."""
    with sqlite3.connect(path) as db:
        db.execute(USERDB_SECRET_TABLE_DDL)
        db.execute("DELETE FROM turn_secret WHERE realm = ?", (REALM,))
        db.executemany("INSERT INTO turn_secret VALUES (?, ?)", userdb_secret_rows(REALM, secrets))
    db.close()


@dataclass
class Turn:
    port: int
    peer_port: int
    userdb: Path
    workdir: Path

    def client(self, secret: str, *, peer: str = "127.0.0.1", messages: int = 1):
        """Run turnutils_uclient: allocate with a credential minted from `secret`, then
        relay `messages` to the echo peer and back."""
        return subprocess.Popen(
            [UCLIENT, "-c", "-p", str(self.port), "-W", secret, "-u", "participant",
             "-e", peer, "-r", str(self.peer_port), "-n", str(messages), "-m", "1", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def relay(self, secret: str, **kwargs) -> tuple[int, str]:
        client = self.client(secret, **kwargs)
        output, _ = client.communicate(timeout=DEADLINE_SECONDS)
        return client.returncode, output


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def turn(tmp_path) -> Iterator[Turn]:
    port, peer_port = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    userdb = tmp_path / "turndb"
    _write_userdb(userdb, TurnSecrets(minted=OLD))
    # Allocations outlive the test clients (they never deallocate): leave room for many.
    relay_min = 40000 + port % 100 * 200
    args = turnserver_args(
        _settings(
            listening_port=port,
            relay_port_min=relay_min,
            relay_port_max=relay_min + 199,
            userdb_path=str(userdb),
            pidfile_path=str(tmp_path / "turnserver.pid"),
            listening_ip="127.0.0.1",
            # Admit exactly the echo peer; the rest of loopback stays denied.
            allowed_peer_cidrs=("127.0.0.1/32",),
        )
    )
    log = (tmp_path / "turnserver.log").open("w")
    server = subprocess.Popen([TURNSERVER, *args], stdout=log, stderr=subprocess.STDOUT)
    peer = subprocess.Popen(
        [PEER, "-L", "127.0.0.1", "-p", str(peer_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: _accepts_tcp(port) or server.poll() is not None, "turnserver")
        _wait(lambda: _udp_bound(peer_port), "the echo peer")
        assert server.poll() is None, (tmp_path / "turnserver.log").read_text()
        yield Turn(port=port, peer_port=peer_port, userdb=userdb, workdir=tmp_path)
    finally:
        _stop(peer)
        _stop(server)
        log.close()
    logged = (tmp_path / "turnserver.log").read_text()
    assert OLD not in logged and NEW not in logged, "coturn logged a shared secret"


@real_coturn
def test_real_coturn_relays_for_a_minted_credential_and_refuses_a_wrong_one(turn):
    code, output = turn.relay(OLD)
    assert code == 0, output
    assert "Total lost packets 0 " in output
    code, output = turn.relay(NEW)
    assert code != 0
    assert "Cannot complete Allocation" in output


@real_coturn
def test_real_coturn_refuses_peers_outside_the_allowed_ranges(turn):
    code, output = turn.relay(OLD, peer="127.0.0.2")
    assert code != 0
    assert "403 (Forbidden IP)" in output


class _Output:
    """A process's output lines, collected by a thread so reading never blocks the test."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line)

    def received(self) -> int:
        """Messages the client has got back through its relay so far."""
        counts = [int(m.group(1)) for m in map(_RECEIVED.search, self.lines) if m]
        return counts[-1] if counts else 0


_RECEIVED = re.compile(r"tot_recv_msgs=(\d+)")


@real_coturn
def test_real_coturn_rotates_live_and_keeps_an_existing_relay_flowing(turn):
    # A relay allocated with the old secret, sending until stopped.
    live = turn.client(OLD, messages=1_000_000)
    output = _Output(live)
    try:
        _wait(lambda: output.received() > 0, "data through the long-lived relay")

        accepting = TurnSecrets(minted=OLD).begin_rotation(NEW)
        _write_userdb(turn.userdb, accepting)
        code, relayed = turn.relay(NEW)
        assert code == 0, f"the next secret is not accepted:\n{relayed}"

        minting = accepting.start_minting()
        _write_userdb(turn.userdb, minting)
        assert turn.relay(OLD)[0] == 0, "credentials minted before the switch must still work"

        _write_userdb(turn.userdb, minting.retire_previous())
        assert turn.relay(OLD)[0] != 0, "the retired secret is still accepted"
        assert turn.relay(NEW)[0] == 0

        after_rotation = output.received()
        _wait(
            lambda: output.received() > after_rotation or live.poll() is not None,
            "more data through the long-lived relay",
        )
        assert live.poll() is None, "".join(output.lines)
    finally:
        _stop(live)
