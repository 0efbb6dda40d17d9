"""What a reader may set on its query session, and which addresses count as this machine."""

from __future__ import annotations

import pytest

from sinks.http_auth import is_loopback
from sinks.query_guard import QueryError
from sinks.query_run import QueryLimits, session_settings

LIMITS = QueryLimits(
    max_execution_time=60.0,
    max_memory_usage=1000,
    max_rows_to_read=2000,
    max_result_rows=30,
    max_result_bytes=4000,
)


def test_limits_go_down_never_up() -> None:
    chosen = dict(
        session_settings(
            {"max_execution_time": "7", "max_memory_usage": "0", "max_result_rows": "99"}, LIMITS
        )
    )
    assert chosen["max_execution_time"] == "7.0"
    assert chosen["max_memory_usage"] == "1000"  # 0 (= unlimited) is not granted
    assert chosen["max_result_rows"] == "30"  # more than the ceiling is not granted
    assert chosen["max_rows_to_read"] == "2000" and chosen["max_result_bytes"] == "4000"
    assert chosen["result_overflow_mode"] == "'throw'"


def test_output_settings_pass_quoted() -> None:
    chosen = dict(
        session_settings(
            {"output_format_json_quote_64bit_integers": "0", "session_timezone": "Asia/Bangkok"},
            LIMITS,
        )
    )
    assert chosen["output_format_json_quote_64bit_integers"] == "0"
    assert chosen["session_timezone"] == "'Asia/Bangkok'"


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("allow_introspection_functions", "1", 164),
        ("max_threads", "64", 164),
        ("log_comment", "x", 164),  # the endpoint's tag to find the query again
        ("max_memory_usage", "lots", 27),
        ("bad name; SET readonly = 0", "1", 115),
    ],
)
def test_other_settings_are_refused(name: str, value: str, code: int) -> None:
    with pytest.raises(QueryError) as info:
        session_settings({name: value}, LIMITS)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.2", False),
        ("", False),
        (None, False),
        ("example.org", False),
    ],
)
def test_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback
