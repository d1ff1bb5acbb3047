"""`switchboard-turn-secret-sync`: keep coturn's user database in step with the mounted Secret.

Runs beside coturn (an init container with --once, then a sidecar). coturn reads the
`turn_secret` table on every authentication, so a rotation phase takes effect on running
servers without a restart. Logs phases and counts, never secret values.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from switchboard_turn.coturn import (
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard-turn-secret-sync", description=__doc__)
    parser.add_argument("--secrets-dir", type=Path, required=True)
    parser.add_argument("--userdb", type=Path, required=True)
    parser.add_argument("--realm", required=True)
    parser.add_argument("--once", action="store_true", help="sync once and exit")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
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
        if args.once or stop.wait(args.interval):
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
