"""Store URLs: chdb:///abs/path?database=warroom, clickhouse://user:pass@host:9000/db, and
chdb+http://127.0.0.1:6066 (the embedded store of another worker, written through it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["DEFAULT_DATABASE", "StoreURL", "StoreURLError", "parse_store_url"]

DEFAULT_DATABASE = "warroom"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StoreURLError(ValueError):
    """The store URL cannot be used; the message says why and shows the accepted forms."""


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL. `kind` is "chdb" (embedded), "native" (clickhouse-driver) or
    "worker" (the chdb store another worker owns, reached over its web server)."""

    kind: str
    database: str
    path: Path | None = None
    host: str = "localhost"
    port: int = 9000
    user: str = "default"
    password: str = ""
    secure: bool = False

    def redacted(self) -> str:
        """The URL for logs: never the password."""
        if self.kind == "chdb":
            return f"chdb://{self.path}?database={self.database}"
        if self.kind == "worker":
            return f"chdb+http://{self.host}:{self.port}?database={self.database}"
        return f"clickhouse://{self.user}@{self.host}:{self.port}/{self.database}"


_FORMS = (
    "chdb:///abs/path?database=warroom, clickhouse://user:pass@host:9000/db or "
    "chdb+http://host:port (another worker's embedded store)"
)


def _database(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise StoreURLError(f"database name {name!r} must be a plain identifier ([A-Za-z0-9_])")
    return name


def parse_store_url(url: str) -> StoreURL:
    """Parse a store URL; raise StoreURLError with the accepted forms on anything else."""
    parts = urlsplit(url.strip())
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "chdb":
        if parts.netloc:
            raise StoreURLError(
                f"chdb URL {url!r} has a host part; use three slashes and an absolute "
                f"path: chdb:///abs/path"
            )
        path = unquote(parts.path)
        if not path.startswith("/") or path == "/":
            raise StoreURLError(f"chdb URL {url!r} needs an absolute data path ({_FORMS})")
        return StoreURL(
            kind="chdb",
            database=_database(query.get("database", DEFAULT_DATABASE)),
            path=Path(path),
        )
    if parts.scheme == "chdb+http":
        if not parts.hostname or not parts.port:
            raise StoreURLError(f"worker store URL {url!r} needs host:port ({_FORMS})")
        return StoreURL(
            kind="worker",
            database=_database(query.get("database", DEFAULT_DATABASE)),
            host=parts.hostname,
            port=parts.port,
        )
    if parts.scheme in ("clickhouse", "clickhouses"):
        if not parts.hostname:
            raise StoreURLError(f"ClickHouse URL {url!r} has no host ({_FORMS})")
        try:
            port = parts.port or (9440 if parts.scheme == "clickhouses" else 9000)
        except ValueError as exc:
            raise StoreURLError(f"ClickHouse URL {url!r} has an invalid port") from exc
        db = unquote(parts.path.lstrip("/")) or query.get("database", DEFAULT_DATABASE)
        return StoreURL(
            kind="native",
            database=_database(db),
            host=parts.hostname,
            port=port,
            user=unquote(parts.username) if parts.username else "default",
            password=unquote(parts.password) if parts.password else "",
            secure=parts.scheme == "clickhouses" or query.get("secure") in ("1", "true"),
        )
    raise StoreURLError(f"unsupported store URL {url!r}: use {_FORMS}")
