"""Durable contacts beside the routing directory: invites, LINE bindings, audit, seen events.

SQLite (WAL), so the CLI issuing an invite and the worker redeeming it can share the file. The
directory YAML stays what an operator reviews; this store only adds who bound which LINE id
(alerts/directory.py `with_bindings`). Every enrolment step is written to `enrolment_audit`:
who (LINE user id), when, by which code, with which outcome.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ACTIVE",
    "UNREACHABLE",
    "AuditRow",
    "Binding",
    "ContactsStore",
    "Invite",
    "Redeemed",
    "contacts_path",
    "new_code",
]

ACTIVE: Final = "active"
UNREACHABLE: Final = "unreachable"  # the chief unfollowed (blocked) the official account
# no 0/O or 1/I/L: the chief types the code into LINE from a letter or a phone call
_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH: Final = 8
#: seen webhook event ids are kept this long (LINE redelivers for a limited time only)
_SEEN_KEEP_MS: Final = 7 * 86_400_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invites (
    code TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    area TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER,
    used_by TEXT
);
CREATE TABLE IF NOT EXISTS bindings (
    role TEXT NOT NULL,
    area TEXT NOT NULL,
    name TEXT NOT NULL,
    line_user TEXT NOT NULL,
    status TEXT NOT NULL,
    code TEXT NOT NULL,
    bound_ms INTEGER NOT NULL,
    changed_ms INTEGER NOT NULL,
    PRIMARY KEY (role, area)
);
CREATE TABLE IF NOT EXISTS enrolment_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    line_user TEXT NOT NULL,
    code TEXT NOT NULL,
    role TEXT NOT NULL,
    area TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id TEXT PRIMARY KEY,
    received_ms INTEGER NOT NULL
);
"""


def contacts_path(data_dir: Path, directory_file: str = "") -> Path:
    """Next to the directory file when there is one (the bindings belong to it), else in the
    data folder."""
    if directory_file:
        p = Path(directory_file)
        return p.with_name(p.name + ".bindings.sqlite3")
    return data_dir / "alerts" / "contacts.sqlite3"


def new_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))


class Redeemed(StrEnum):
    BOUND = "bound"
    UNKNOWN = "unknown_code"
    EXPIRED = "expired_code"
    USED = "used_code"


@dataclass(frozen=True)
class Invite:
    code: str
    role: str  # chief | governor
    area: str  # district code (chief) or province code (governor)
    name: str
    expires_ms: int


@dataclass(frozen=True)
class Binding:
    role: str
    area: str
    name: str
    line_user: str
    status: str
    code: str
    bound_ms: int
    changed_ms: int


@dataclass(frozen=True)
class AuditRow:
    at_ms: int
    event: str
    outcome: str
    line_user: str
    code: str
    role: str
    area: str


class ContactsStore:
    """Thread-safe: the webhook's processing and the notifier's routing share one connection."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _audit(self, at_ms: int, event: str, outcome: str, user: str, code: str = "",
               role: str = "", area: str = "") -> None:  # fmt: skip
        self._db.execute(
            "INSERT INTO enrolment_audit (at_ms, event, outcome, line_user, code, role, area) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at_ms, event, outcome, user, code, role, area),
        )

    def create_invite(self, role: str, area: str, name: str, now_ms: int, ttl_ms: int) -> Invite:
        with self._lock:
            while True:
                code = new_code()
                try:
                    self._db.execute(
                        "INSERT INTO invites (code, role, area, name, created_ms, expires_ms) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (code, role, area, name, now_ms, now_ms + ttl_ms),
                    )
                except sqlite3.IntegrityError:
                    continue  # the same code drawn twice: draw again
                self._audit(now_ms, "invite", "issued", "", code, role, area)
                return Invite(code, role, area, name, now_ms + ttl_ms)

    def redeem(self, code: str, line_user: str, now_ms: int) -> tuple[Redeemed, Invite | None]:
        """Use `code` for `line_user`: one transaction, so two messages with the same code
        bind at most once."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT role, area, name, expires_ms, used_ms FROM invites WHERE code = ?",
                    (code,),
                ).fetchone()
                if row is None:
                    outcome, invite = Redeemed.UNKNOWN, None
                else:
                    role, area, name, expires_ms, used_ms = row
                    invite = Invite(code, role, area, name, expires_ms)
                    if used_ms is not None:
                        outcome = Redeemed.USED
                    elif now_ms >= expires_ms:
                        outcome = Redeemed.EXPIRED
                    else:
                        outcome = Redeemed.BOUND
                        self._db.execute(
                            "UPDATE invites SET used_ms = ?, used_by = ? WHERE code = ?",
                            (now_ms, line_user, code),
                        )
                        self._db.execute(
                            "INSERT OR REPLACE INTO bindings (role, area, name, line_user, "
                            "status, code, bound_ms, changed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (role, area, name, line_user, ACTIVE, code, now_ms, now_ms),
                        )
                self._audit(
                    now_ms,
                    "redeem",
                    str(outcome),
                    line_user,
                    code,
                    invite.role if invite else "",
                    invite.area if invite else "",
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return outcome, invite

    def set_reachable(self, line_user: str, reachable: bool, now_ms: int) -> list[Binding]:
        """Mark every binding of this LINE user (un)reachable; returns those that changed."""
        status, before = (ACTIVE, UNREACHABLE) if reachable else (UNREACHABLE, ACTIVE)
        with self._lock:
            rows = self._db.execute(
                "SELECT role, area FROM bindings WHERE line_user = ? AND status = ?",
                (line_user, before),
            ).fetchall()
            for role, area in rows:
                self._db.execute(
                    "UPDATE bindings SET status = ?, changed_ms = ? WHERE role = ? AND area = ?",
                    (status, now_ms, role, area),
                )
                self._audit(now_ms, "follow" if reachable else "unfollow", status, line_user,
                            "", role, area)  # fmt: skip
            if not rows:
                self._audit(now_ms, "follow" if reachable else "unfollow", "no_binding",
                            line_user)  # fmt: skip
        return [b for b in self.bindings() if (b.role, b.area) in set(rows)]

    def first_delivery(self, event_id: str, now_ms: int) -> bool:
        """True the first time a webhook event id is seen (LINE redelivers the same id)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO webhook_events (event_id, received_ms) VALUES (?, ?)",
                (event_id, now_ms),
            )
            if cur.rowcount and now_ms % 100 == 0:  # now and then, not on every event
                self._db.execute(
                    "DELETE FROM webhook_events WHERE received_ms < ?", (now_ms - _SEEN_KEEP_MS,)
                )
            return bool(cur.rowcount)

    def bindings(self) -> list[Binding]:
        with self._lock:
            rows = self._db.execute(
                "SELECT role, area, name, line_user, status, code, bound_ms, changed_ms "
                "FROM bindings ORDER BY role, area"
            ).fetchall()
        return [Binding(*r) for r in rows]

    def binding_of(self, line_user: str) -> list[Binding]:
        return [b for b in self.bindings() if b.line_user == line_user]

    def audit(self) -> list[AuditRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at_ms, event, outcome, line_user, code, role, area "
                "FROM enrolment_audit ORDER BY seq"
            ).fetchall()
        return [AuditRow(*r) for r in rows]

    def version(self) -> Any:
        """Changes whenever any connection commits (for cheap re-reads of the bindings)."""
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*), COALESCE(MAX(changed_ms), 0) FROM bindings"
            ).fetchone()
