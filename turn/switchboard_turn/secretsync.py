"""`switchboard-turn-secret-sync`: keep coturn in step with its mounted Secrets.

Runs beside coturn (an init container with --once, then a sidecar). coturn reads the
`turn_secret` table on every authentication, so a rotation phase takes effect on running
servers without a restart. With `--tls-dir`, a renewed certificate reaches coturn too: the
sidecar sends it SIGUSR2 (the pod shares one process namespace), on which coturn reloads
its certificate and key for new TLS connections and keeps every allocation it holds.
Logs phases and counts, never secret values.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from switchboard_turn.coturn import (
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    USERDB_SECRET_TABLE_DDL,
    InvalidTurnSecret,
    TurnSecrets,
    userdb_secret_rows,
)

log = logging.getLogger("switchboard.turn.secretsync")


def read_secrets(directory: Path) -> TurnSecrets:
    files = {
        path.name: path.read_text().strip()
        for path in directory.iterdir()
        if path.is_file() and not path.name.startswith(".")
    }
    return TurnSecrets.from_files(files)


def write_userdb(path: Path, realm: str, secrets: TurnSecrets) -> None:
    """Replace the realm's accepted secrets in one transaction."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(USERDB_SECRET_TABLE_DDL)
            db.execute("DELETE FROM turn_secret WHERE realm = ?", (realm,))
            db.executemany(
                "INSERT INTO turn_secret VALUES (?, ?)", userdb_secret_rows(realm, secrets)
            )
    finally:
        db.close()


def sync_once(secrets_dir: Path, userdb: Path, realm: str, last: TurnSecrets | None) -> TurnSecrets:
    secrets = read_secrets(secrets_dir)
    if secrets != last:
        write_userdb(userdb, realm, secrets)
        log.info("turn secrets synced phase=%s accepted=%d", secrets.phase, len(secrets.accepted))
    return secrets


class CertificateReloader:
    """Signals coturn (SIGUSR2, read from its pidfile) whenever the mounted certificate or
    key changes. The first look also signals: a reload is harmless, and a renewal that
    landed between coturn's start and the sidecar's is not missed."""

    def __init__(self, tls_dir: Path, pidfile: Path) -> None:
        self._files = (tls_dir / TLS_CERT_FILE, tls_dir / TLS_KEY_FILE)
        self._pidfile = pidfile
        self._signalled: bytes | None = None

    def check(self) -> bool:
        """True if coturn was told to reload now."""
        try:
            contents = b"\0".join(path.read_bytes() for path in self._files)
        except OSError as error:
            log.error("turn certificate unreadable error=%s", type(error).__name__)
            return False
        if contents == self._signalled:
            return False
        try:
            pid = int(self._pidfile.read_text().strip())
            os.kill(pid, signal.SIGUSR2)
        except (OSError, ValueError) as error:
            # coturn has not started (no pidfile yet) or is restarting: try next round.
            log.info("turn certificate reload deferred reason=%s", type(error).__name__)
            return False
        self._signalled = contents
        log.info("turn certificate reload signalled pid=%d", pid)
        return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard-turn-secret-sync", description=__doc__)
    parser.add_argument("--secrets-dir", type=Path, required=True)
    parser.add_argument("--userdb", type=Path, required=True)
    parser.add_argument("--realm", required=True)
    parser.add_argument("--once", action="store_true", help="sync once and exit")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--tls-dir", type=Path, help="the mounted kubernetes.io/tls Secret")
    parser.add_argument("--pidfile", type=Path, help="coturn's pidfile (with --tls-dir)")
    args = parser.parse_args(argv)
    if (args.tls_dir is None) != (args.pidfile is None):
        parser.error("--tls-dir and --pidfile go together")
    reloader = None if args.tls_dir is None else CertificateReloader(args.tls_dir, args.pidfile)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    last: TurnSecrets | None = None
    while True:
        try:
            last = sync_once(args.secrets_dir, args.userdb, args.realm, last)
        except (OSError, InvalidTurnSecret, sqlite3.Error) as error:
            log.error("turn secrets not synced error=%s", type(error).__name__)
            if args.once:
                return 1
        if reloader is not None:
            reloader.check()
        if args.once or stop.wait(args.interval):
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
