"""Pure parts of sinks: store URLs, type parsing, error classification, read-only checks,
migration statement splitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.backends import error_from_message, split_type
from sinks.http_query import output_format
from sinks.migrate import Migration, load_migrations
from sinks.url import StoreURLError, parse_store_url


def test_chdb_url() -> None:
    u = parse_store_url("chdb:///var/lib/warroom/ch?database=wr_1")
    assert (u.kind, u.path, u.database) == ("chdb", Path("/var/lib/warroom/ch"), "wr_1")
    assert parse_store_url("chdb:///data").database == "warroom"


def test_clickhouse_url() -> None:
    u = parse_store_url("clickhouse://ops:s%40cret@ch.example:9440/metrics")
    assert (u.kind, u.host, u.port, u.user, u.password, u.database) == (
        "native",
        "ch.example",
        9440,
        "ops",
        "s@cret",
        "metrics",
    )
    assert "s@cret" not in u.redacted()
    d = parse_store_url("clickhouse://localhost")
    assert (d.port, d.user, d.password, d.database) == (9000, "default", "", "warroom")


@pytest.mark.parametrize(
    "bad",
    [
        "chdb://relative/path",
        "chdb://",
        "chdb:///data?database=drop;table",
        "postgres://x/y",
        "clickhouse:///nohost",
        "clickhouse://h:notaport/db",
    ],
)
def test_bad_urls_say_why(bad: str) -> None:
    with pytest.raises(StoreURLError):
        parse_store_url(bad)


@pytest.mark.parametrize(
    ("ch_type", "expected"),
    [
        ("LowCardinality(String)", ("String", False, None)),
        ("Nullable(DateTime64(3, 'UTC'))", ("DateTime64", True, None)),
        ("Array(LowCardinality(String))", ("Array", False, "LowCardinality(String)")),
        ("LowCardinality(Nullable(String))", ("String", True, None)),
        ("UInt16", ("UInt16", False, None)),
    ],
)
def test_split_type(ch_type: str, expected: tuple[str, bool, str | None]) -> None:
    assert split_type(ch_type) == expected


def test_error_classification() -> None:
    e = error_from_message("Code: 60. DB::Exception: Unknown table x. (UNKNOWN_TABLE)")
    assert (e.code, e.name, e.transient) == (60, "UNKNOWN_TABLE", False)
    e = error_from_message("Code: 1001. DB::Exception: filesystem error. (STD_EXCEPTION)")
    assert (e.code, e.transient) == (1001, True)
    old = error_from_message("DB::Exception: Table x doesn't exist.. Stack trace:\n0. ...", 60)
    assert (old.name, old.transient, str(old)) == (
        "UNKNOWN_TABLE",
        False,
        "DB::Exception: Table x doesn't exist.",
    )


def test_output_format() -> None:
    assert output_format("SELECT 1", "TabSeparated") == "TabSeparated"
    assert output_format("SELECT 1 FORMAT JSONEachRow;", "TSV") == "JSONEachRow"
    assert output_format("SELECT 'FORMAT CSV'", "Native") == "Native"


def test_migration_files_split_into_statements() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    assert migrations[0].version == 1
    statements = migrations[0].statements("wr")
    assert len(statements) == 9  # the nine tables of the brief; schema_migrations is the runner's
    assert all(s.startswith("CREATE TABLE IF NOT EXISTS `wr`.") for s in statements)
    m = Migration(2, "x", "-- a; comment\nCREATE TABLE {db}.a (x String DEFAULT ';');\n\n")
    assert m.statements("d") == ["CREATE TABLE `d`.a (x String DEFAULT ';')"]
