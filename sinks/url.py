"""Store URLs: chdb:///abs/path?database=warroom, clickhouse://user:pass@host:9000/db, and
chdb+http://127.0.0.1:6066 (the embedded store of another worker, written through it).

A ClickHouse password is best given apart from the URL (WARROOM_STORE_USER and
WARROOM_STORE_PASSWORD, taken literally): inside a URL it must be percent-encoded, and an
unencoded `/`, `#`, `?` or `@` cuts the URL in the wrong place."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "DEFAULT_DATABASE",
    "PASSWORD_ENV",
    "TOKEN_ENV",
    "USER_ENV",
    "StoreURL",
    "StoreURLError",
    "parse_store_url",
]

DEFAULT_DATABASE = "warroom"
USER_ENV = "WARROOM_STORE_USER"
PASSWORD_ENV = "WARROOM_STORE_PASSWORD"
TOKEN_ENV = "WARROOM_STORE_TOKEN"
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


def _shown(url: str) -> str:
    """The URL for an error message: a password in it is replaced by ***."""
    return re.sub(r"(//[^/@:]*):[^@]*@", r"\1:***@", url)


def _database(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise StoreURLError(f"database name {name!r} must be a plain identifier ([A-Za-z0-9_])")
    return name


def parse_store_url(url: str, environ: Mapping[str, str] | None = None) -> StoreURL:
    """Parse a store URL; raise StoreURLError with the accepted forms on anything else.

    For clickhouse:// URLs the user and password come from WARROOM_STORE_USER and
    WARROOM_STORE_PASSWORD in `environ` (os.environ by default) when set, literally; else from
    the URL's percent-encoded user:pass@."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url.strip())
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "chdb":
        if parts.netloc:
            raise StoreURLError(
                f"chdb URL {_shown(url)!r} has a host part; use three slashes and an absolute "
                f"path: chdb:///abs/path"
            )
        path = unquote(parts.path)
        if not path.startswith("/") or path == "/":
            raise StoreURLError(f"chdb URL {_shown(url)!r} needs an absolute data path ({_FORMS})")
        return StoreURL(
            kind="chdb",
            database=_database(query.get("database", DEFAULT_DATABASE)),
            path=Path(path),
        )
    if parts.scheme == "chdb+http":
        if not parts.hostname or not parts.port:
            raise StoreURLError(f"worker store URL {_shown(url)!r} needs host:port ({_FORMS})")
        return StoreURL(
            kind="worker",
            database=_database(query.get("database", DEFAULT_DATABASE)),
            host=parts.hostname,
            port=parts.port,
            password=env.get(TOKEN_ENV, ""),  # the owner's insert credential
        )
    if parts.scheme in ("clickhouse", "clickhouses"):
        if not parts.hostname:
            raise StoreURLError(f"ClickHouse URL {_shown(url)!r} has no host ({_FORMS})")
        try:
            port = parts.port or (9440 if parts.scheme == "clickhouses" else 9000)
        except ValueError as exc:
            raise StoreURLError(f"ClickHouse URL {_shown(url)!r} has an invalid port") from exc
        db = unquote(parts.path.lstrip("/")) or query.get("database", DEFAULT_DATABASE)
        user, password = _credentials(parts.username, parts.password, env)
        return StoreURL(
            kind="native",
            database=_database(db),
            host=parts.hostname,
            port=port,
            user=user,
            password=password,
            secure=parts.scheme == "clickhouses" or query.get("secure") in ("1", "true"),
        )
    raise StoreURLError(f"unsupported store URL {_shown(url)!r}: use {_FORMS}")


def _credentials(
    url_user: str | None, url_password: str | None, env: Mapping[str, str]
) -> tuple[str, str]:
    """(user, password): the separate settings, literally, else the URL's, percent-decoded."""
    user = env.get(USER_ENV, "")
    password = env.get(PASSWORD_ENV, "")
    if (user or password) and (url_user or url_password):
        raise StoreURLError(
            f"the ClickHouse user is given twice: drop user:pass@ from WARROOM_STORE "
            f"when {USER_ENV} / {PASSWORD_ENV} are set"
        )
    if password and not user:
        raise StoreURLError(f"{PASSWORD_ENV} is set but {USER_ENV} is not: set both")
    if user:
        return user, password
    return (
        unquote(url_user) if url_user else "default",
        unquote(url_password) if url_password else "",
    )
