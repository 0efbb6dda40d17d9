"""ClickHouse credentials apart from the store URL (WARROOM_STORE_USER / _PASSWORD, literal):
passwords with / # ? % @ : and a literal %2F reach the server as they are — checked by logging
in to a real clickhouse-server (Debian's 18.16) as a user with such a password."""

from __future__ import annotations

from collections.abc import Iterator
from xml.sax.saxutils import escape

import pytest

from sinks.backends import StoreError, open_backend
from sinks.url import StoreURLError, parse_store_url
from tests.services.clickhouse_server import ClickHouseServer, available

HARD = [
    "a/b",
    "x#y",
    "q?r=1",
    "50%off",
    "us@er",
    "p:q",
    "lit%2Fslash",
    "all/#?%@:%2F-ก",
]


@pytest.mark.parametrize("password", HARD)
def test_separate_password_is_taken_literally(password: str) -> None:
    env = {"WARROOM_STORE_USER": "warroom_writer", "WARROOM_STORE_PASSWORD": password}
    u = parse_store_url("clickhouse://ch:9000/warroom", env)
    assert (u.user, u.password, u.host, u.port, u.database) == (
        "warroom_writer",
        password,
        "ch",
        9000,
        "warroom",
    )
    assert password not in u.redacted()


def test_url_password_must_be_percent_encoded() -> None:
    # what the old compose did: ${CLICKHOUSE_PASSWORD} pasted into the URL
    raw = "clickhouse://warroom:a/b@clickhouse:9000/warroom"
    with pytest.raises(StoreURLError) as err:
        parse_store_url(raw, {})
    assert "a/b" not in str(err.value), "the error message must not show the password"
    # %2F inside a URL is an encoded '/': only the separate setting keeps it literal
    assert parse_store_url("clickhouse://u:lit%252Fslash@h/db", {}).password == "lit%2Fslash"


def test_credentials_given_twice_or_half_are_refused() -> None:
    with pytest.raises(StoreURLError, match="given twice"):
        parse_store_url(
            "clickhouse://u:p@h/db", {"WARROOM_STORE_USER": "u", "WARROOM_STORE_PASSWORD": "p"}
        )
    with pytest.raises(StoreURLError, match="WARROOM_STORE_USER is not"):
        parse_store_url("clickhouse://h/db", {"WARROOM_STORE_PASSWORD": "p"})


_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        {users}
    </users>
    <quotas><default></default></quotas>
</yandex>
"""
_USER = """<u{i}>
            <password>{password}</password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </u{i}>"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    if not available():
        pytest.skip("clickhouse-server is not installed")
    srv = ClickHouseServer(base_dir=tmp_path_factory.mktemp("prod-ch"))
    users = "\n        ".join(_USER.format(i=i, password=escape(p)) for i, p in enumerate(HARD))
    (srv.dir / "users.xml").write_text(_USERS.format(users=users), encoding="utf-8")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.integration
@pytest.mark.parametrize(("i", "password"), list(enumerate(HARD)))
def test_login_with_a_hard_password(server: ClickHouseServer, i: int, password: str) -> None:
    url = f"clickhouse://{server.host}:{server.tcp_port}/default"
    env = {"WARROOM_STORE_USER": f"u{i}", "WARROOM_STORE_PASSWORD": password}
    backend = open_backend(parse_store_url(url, env), create_database=False)
    try:
        # 18.16 has no currentUser(): the running query's own row names its user
        rows = backend.query_rows(
            "SELECT user FROM system.processes WHERE query LIKE '%credentials-probe%'"
        )
        assert rows == [(f"u{i}",)]
    finally:
        backend.close()
    # the same password with one character changed is refused: the server checks it
    wrong = {**env, "WARROOM_STORE_PASSWORD": password + "x"}
    with pytest.raises(StoreError):
        bad = open_backend(parse_store_url(url, wrong), create_database=False)
        try:
            bad.query_rows("SELECT 1")
        finally:
            bad.close()
