"""Durable outbox: one row per (notification, recipient), kept in SQLite until delivered.

Written before anything is sent, so a crash loses nothing: pending rows are sent again after a
restart and delivered rows are not. Rows of one recipient are delivered in submission order
(a "resolved" never overtakes its "firing"), so a failing recipient holds only its own queue.
A row marked failed (refused by its receiver, or given up) leaves the queue: the recipient's
next row becomes its head. Failed rows are kept until an operator has seen them
(`warroom alerts outbox --state failed`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from alerts.model import (
    Alert,
    AlertState,
    Notification,
    NotificationKind,
    Notified,
    Recipient,
    Severity,
)

__all__ = ["DELIVERED", "FAILED", "PENDING", "Outbox", "OutboxItem", "decode", "encode"]

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"  # refused by the receiver or given up; kept for inspection, never pruned

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    notification_id TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT NOT NULL REFERENCES notifications(notification_id),
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    queued_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    UNIQUE (notification_id, channel, address)
);
CREATE INDEX IF NOT EXISTS deliveries_pending
    ON deliveries (state, channel, address, seq);
"""


def encode(notification: Notification) -> bytes:
    return orjson.dumps(asdict(notification))


_ALERT_FIELDS = frozenset(f.name for f in fields(Alert))


def decode(body: bytes | str) -> Notification:
    raw: dict[str, Any] = orjson.loads(body)
    alerts = []
    for a in raw["alerts"]:
        # rows written by an older version may carry fields the model no longer has
        a = {k: v for k, v in a.items() if k in _ALERT_FIELDS}
        a["severity"] = Severity(a["severity"])
        a["state"] = AlertState(a["state"])
        alerts.append(Alert(**a))
    return Notification(
        notification_id=raw["notification_id"],
        kind=NotificationKind(raw["kind"]),
        district_code=raw["district_code"],
        alerts=alerts,
        created_at_ms=raw["created_at_ms"],
        recipients=[Recipient(**r) for r in raw.get("recipients", [])],
        notified=[Notified(**x) for x in raw.get("notified", [])],
    )


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    notification: Notification
    recipient: Recipient
    state: str
    attempts: int
    next_attempt_ms: int
    last_error: str
    queued_ms: int

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.notification.notification_id, self.recipient.channel, self.recipient.address)


class Outbox:
    """Thread-safe (one connection behind a lock); every change is committed before return."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # an outbox that forgets on power loss is not one: fsync every commit (alerts are rare)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def add(self, notification: Notification, recipients: Iterable[Recipient], now_ms: int) -> int:
        """Queue the notification for each recipient; rows that exist already (a re-submission
        after a restart) are left as they are. Returns how many rows are new."""
        return self.add_many([(notification, recipients)], now_ms)[0]

    def add_many(
        self, batch: Iterable[tuple[Notification, Iterable[Recipient]]], now_ms: int
    ) -> list[int]:
        """`add` for several notifications in one transaction (one fsync for a whole tick);
        the new rows of each."""
        added = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for notification, recipients in batch:
                    nid = notification.notification_id
                    self._db.execute(
                        "INSERT OR IGNORE INTO notifications VALUES (?, ?, ?)",
                        (nid, encode(notification), now_ms),
                    )
                    before = self._db.total_changes
                    self._db.executemany(
                        "INSERT OR IGNORE INTO deliveries (notification_id, channel, address,"
                        " role, name, state, next_attempt_ms, queued_ms, updated_ms)"
                        f" VALUES (?1, ?2, ?3, ?4, ?5, '{PENDING}', ?6, ?6, ?6)",
                        [(nid, r.channel, r.address, r.role, r.name, now_ms) for r in recipients],
                    )
                    added.append(self._db.total_changes - before)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    _SELECT = (
        "SELECT d.seq, n.body, d.channel, d.address, d.role, d.name, d.state, d.attempts,"
        " d.next_attempt_ms, d.last_error, d.queued_ms"
        " FROM deliveries d JOIN notifications n USING (notification_id)"
    )

    def _items(self, sql: str, params: tuple[Any, ...]) -> list[OutboxItem]:
        with self._lock:
            rows = self._db.execute(self._SELECT + sql, params).fetchall()
        return [
            OutboxItem(
                seq=row[0],
                notification=decode(row[1]),
                recipient=Recipient(role=row[4], name=row[5], channel=row[2], address=row[3]),
                state=row[6],
                attempts=row[7],
                next_attempt_ms=row[8],
                last_error=row[9],
                queued_ms=row[10],
            )
            for row in rows
        ]

    def heads(self, limit: int = 1000) -> list[OutboxItem]:
        """The first pending row of each recipient's queue, earliest due first: only these may
        be sent now (a recipient's later rows wait for its head)."""
        return self._items(
            f" WHERE d.state = '{PENDING}' AND NOT EXISTS ("
            f"  SELECT 1 FROM deliveries e WHERE e.state = '{PENDING}' AND e.channel = d.channel"
            "   AND e.address = d.address AND e.seq < d.seq)"
            " ORDER BY d.next_attempt_ms, d.seq LIMIT ?",
            (limit,),
        )

    def items(self, state: str | None = None) -> list[OutboxItem]:
        if state is None:
            return self._items(" ORDER BY d.seq", ())
        return self._items(" WHERE d.state = ? ORDER BY d.seq", (state,))

    def _update(self, item: OutboxItem, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(
                f"UPDATE deliveries SET {sql} WHERE seq = ?",
                (*params, item.seq),
            )

    def mark_delivered(self, item: OutboxItem, now_ms: int) -> None:
        self._update(
            item,
            "state = ?, attempts = attempts + 1, last_error = '', updated_ms = ?",
            (DELIVERED, now_ms),
        )

    def mark_retry(self, item: OutboxItem, now_ms: int, next_ms: int, error: str) -> None:
        self._update(
            item,
            "attempts = attempts + 1, next_attempt_ms = ?, last_error = ?, updated_ms = ?",
            (next_ms, error[:2000], now_ms),
        )

    def mark_failed(self, item: OutboxItem, now_ms: int, error: str) -> None:
        self._update(
            item,
            "state = ?, attempts = attempts + 1, last_error = ?, updated_ms = ?",
            (FAILED, error[:2000], now_ms),
        )

    def retry_now(self, channel: str, address_prefix: str, now_ms: int) -> int:
        """Pending rows of `channel` whose address is `address_prefix` or under it ('' for all)
        that wait for a later attempt become due now (their destination works again); how
        many. Order is untouched: only each recipient's head is ever sent."""
        with self._lock:
            cur = self._db.execute(
                f"UPDATE deliveries SET next_attempt_ms = ?1 WHERE state = '{PENDING}'"
                " AND channel = ?2 AND next_attempt_ms > ?1 AND (?3 = '' OR address = ?3"
                " OR substr(address, 1, length(?3) + 1) IN (?3 || '/', ?3 || '?'))",
                (now_ms, channel, address_prefix),
            )
        return cur.rowcount

    def delivered_about(self, alerts: Iterable[Alert], role: str = "chief") -> list[Notified]:
        """The first delivery per (name, channel) to `role` of any notification about these
        alerts (same rule, district, dimension and episode start), oldest first."""
        out: dict[tuple[str, str], Notified] = {}
        with self._lock:
            for a in alerts:
                # the stored bodies are orjson (no spaces): match the alert's identifying fields
                marks = (
                    orjson.dumps({"rule_id": a.rule_id})[1:-1],
                    orjson.dumps({"district_code": a.district_code})[1:-1],
                    orjson.dumps({"dimension": a.dimension})[1:-1],
                    orjson.dumps({"pending_since_ms": a.pending_since_ms})[1:-1],
                )
                rows = self._db.execute(
                    "SELECT d.role, d.name, d.channel, d.updated_ms FROM deliveries d"
                    " JOIN notifications n ON n.notification_id = d.notification_id"
                    " WHERE d.state = ? AND d.role = ? AND instr(n.body, ?) > 0"
                    " AND instr(n.body, ?) > 0 AND instr(n.body, ?) > 0 AND instr(n.body, ?) > 0"
                    " ORDER BY d.updated_ms",
                    (DELIVERED, role, *marks),
                ).fetchall()
                for r_role, name, channel, at_ms in rows:
                    out.setdefault((name, channel), Notified(r_role, name, channel, at_ms))
        return sorted(out.values(), key=lambda x: x.at_ms)

    def counts(self) -> dict[tuple[str, str], int]:
        """(channel, state) -> rows."""
        with self._lock:
            rows = self._db.execute(
                "SELECT channel, state, count(*) FROM deliveries GROUP BY channel, state"
            ).fetchall()
        return {(channel, state): n for channel, state, n in rows}

    def prune(self, older_than_ms: int) -> int:
        """Delete delivered rows last touched before the cut-off (failed rows stay until an
        operator looks at them). A notification re-submitted after pruning would be sent
        again, so keep the cut-off well beyond any replay the engine can do."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    f"DELETE FROM deliveries WHERE state = '{DELIVERED}' AND updated_ms < ?",
                    (older_than_ms,),
                )
                self._db.execute(
                    "DELETE FROM notifications WHERE notification_id NOT IN"
                    " (SELECT notification_id FROM deliveries)"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
