"""Logging: JSON lines or text, level by flag or environment, and the personal-data mask."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from warroom.logs import DeadLetterLog, configure, log_sink_error, mask_pii, setup_logging
from warroom.settings import load

# (text, what must disappear) — the personal numbers are made up, in the shapes people write
PERSONAL = [
    ("citizen 1103700012345", "1103700012345"),
    ("citizen 1-1037-00012-34-5 filed", "1-1037-00012-34-5"),
    ("citizen 1 1037 00012 34 5.", "1 1037 00012 34 5"),
    ("call 081-234-5678 now", "081-234-5678"),
    ("call 0812345678", "0812345678"),
    ("call +66 81 234 5678", "+66 81 234 5678"),
    ("call +66812345678", "+66812345678"),
    ("office 02-123-4567", "02-123-4567"),
    ("office 053-123-456", "053-123-456"),
    ("โทร๐๘๑๒๓๔๕๖๗๘ครับ", "๐๘๑๒๓๔๕๖๗๘"),  # Thai digits, no spaces around
    ("เลขบัตร1103700012345", "1103700012345"),
]
# text that must come through untouched: logs are useless if the mask eats ids and times
KEPT = [
    "event 2f1c0812-3456-4a78-9b0c-a08123456789 rejected",
    "occurred_at 2025-10-01T09:30:00+07:00",
    "offset 1234567 partition 3 district 1001",
    "wrote 200000 rows in 0.123456789 s",
    "pseudonym a3f08123456789bc0812345678901234",
    "listening on 127.0.0.1:6066",
]


@pytest.mark.parametrize(("text", "secret"), PERSONAL)
def test_mask_removes_citizen_ids_and_phones(text: str, secret: str) -> None:
    out = mask_pii(text)
    assert secret not in out
    assert "[masked]" in out
    digits = "".join(ch for ch in secret if ch.isdigit())
    assert digits not in "".join(ch for ch in out if ch.isdigit())


@pytest.mark.parametrize("text", KEPT)
def test_mask_keeps_ids_times_and_counts(text: str) -> None:
    assert mask_pii(text) == text


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buf = io.StringIO()
    setup_logging("debug", "json", buf)
    yield buf
    root.handlers[:], level = saved
    root.setLevel(level)


def lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_mask_message_args_extras_and_exceptions(captured: io.StringIO) -> None:
    log = logging.getLogger("warroom.test")
    log.info("complaint from %s about %s", "081-234-5678", "flood", extra={"district": "1001"})
    log.warning("bad event", extra={"detail": "citizen_id 1103700012345", "ids": [1103700012345]})
    try:
        raise ValueError("cannot parse 1-1037-00012-34-5")
    except ValueError:
        log.exception("validation crashed")
    out = lines(captured)
    assert [r["level"] for r in out] == ["info", "warning", "error"]
    assert out[0]["msg"] == "complaint from [masked] about flood"
    assert out[0]["district"] == "1001"
    assert out[0]["logger"] == "warroom.test"
    assert str(out[0]["ts"]).endswith("Z")
    assert out[1]["detail"] == "citizen_id [masked]"
    assert out[1]["ids"] == ["[masked]"]
    assert "ValueError" in str(out[2]["exc"])
    raw = captured.getvalue()
    for secret in ("0812345678", "081-234-5678", "1103700012345", "1-1037-00012-34-5"):
        assert secret not in raw


def test_text_format_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        buf = Tty()
        setup_logging("info", "auto", buf)
        logging.getLogger("warroom.t").info("started", extra={"port": 6066})
        logging.getLogger("warroom.t").debug("hidden")
        assert buf.getvalue().rstrip().endswith("INFO    warroom.t: started port=6066")
        assert "hidden" not in buf.getvalue()
        assert not buf.getvalue().startswith("{")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_level_and_format_from_environment_and_flags() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        settings = load({"WARROOM_LOG_LEVEL": "warning", "WARROOM_LOG_FORMAT": "json"})
        buf = io.StringIO()
        configure(settings, stream=buf)
        assert root.level == logging.WARNING
        logging.getLogger("warroom.t").info("not shown")
        logging.getLogger("warroom.t").warning("shown")
        assert [r["msg"] for r in lines(buf)] == ["shown"]
        configure(settings, level="debug", fmt="text", stream=io.StringIO())  # flags win
        assert root.level == logging.DEBUG
        assert logging.getLogger("aiokafka").level == logging.WARNING
        with pytest.raises(ValueError, match="log level 'loud'"):
            setup_logging("loud", "json", io.StringIO())
        with pytest.raises(ValueError, match="log format 'xml'"):
            setup_logging("info", "xml", io.StringIO())
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_dead_letter_log_fields_and_flood_limit(captured: io.StringIO) -> None:
    now = [0.0]
    dl = DeadLetterLog(logging.getLogger("warroom.dl"), burst=3, interval=10, clock=lambda: now[0])
    for i in range(8):
        dl.rejected(
            reason="invalid_citizen_id",
            topic="grievance-events",
            partition=1,
            offset=100 + i,
            event_id=f"00000000-0000-4000-8000-00000000000{i}",
            district="1001",
            field="complainant.citizen_id",
            detail="check digit of 1103700012346 is wrong",
        )
    dl.rejected(reason="unknown_district", topic="g", partition=0, offset=1, district="9999")
    out = lines(captured)
    assert len(out) == 4  # 3 of the flood + the other reason
    first = out[0]
    assert first["reason"] == "invalid_citizen_id"
    assert first["event_id"] == "00000000-0000-4000-8000-000000000000"
    assert first["district"] == "1001"
    assert (first["partition"], first["offset"]) == (1, 100)
    assert first["detail"] == "check digit of [masked] is wrong"
    now[0] = 11.0
    dl.rejected(reason="unknown_district", topic="g", partition=0, offset=2, district="9998")
    out = lines(captured)
    summary = [r for r in out if r.get("suppressed")]
    assert summary == [summary[0]] and summary[0]["suppressed"] == 5
    assert summary[0]["reason"] == "invalid_citizen_id"
    assert out[-1]["district"] == "9998"  # a new interval logs again


def test_sink_error_log_carries_where_to_look(captured: io.StringIO) -> None:
    log_sink_error(
        logging.getLogger("sinks.writer"),
        ConnectionError("Code: 210. Connection refused (127.0.0.1:9000)"),
        backend="clickhouse",
        table="grievance_events",
        rows=5000,
        attempt=2,
        retry_in=1.5,
        event_id="2f1c0812-3456-4a78-9b0c-a08123456789",
        district="1001",
    )
    (rec,) = lines(captured)
    assert rec["level"] == "error"
    assert rec["event_id"] == "2f1c0812-3456-4a78-9b0c-a08123456789"
    assert rec["district"] == "1001"
    assert rec["rows"] == 5000 and rec["attempt"] == 2 and rec["retry_in_s"] == 1.5
    assert rec["error"] == "ConnectionError: Code: 210. Connection refused (127.0.0.1:9000)"
