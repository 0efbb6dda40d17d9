"""The routing directory: validation with line numbers, and who receives which notification."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
import yaml

from alerts.directory import (
    Directory,
    DirectoryError,
    default_directory,
    load_directory,
    parse_directory,
)
from alerts.model import (
    Alert,
    AlertState,
    Notification,
    NotificationKind,
    Recipient,
    Severity,
)

EXAMPLE = Path(__file__).parents[3] / "alerts" / "directory.example.yaml"


def _alert(district: str, rule: str = "grievance_surge") -> Alert:
    return Alert(
        rule_id=rule,
        district_code=district,
        dimension="",
        severity=Severity.CRITICAL,
        state=AlertState.FIRING,
        value=42,
        threshold=16,
        title_th="เรื่องร้องเรียนพุ่งสูง",
        title_en="Grievance surge",
        summary_th="รับเรื่อง 42 เรื่องใน 1 ชม. (ปกติ 8)",
        summary_en="42 received in 1 h (usual 8)",
        pending_since_ms=1_780_000_000_000,
        fired_at_ms=1_780_000_060_000,
    )


def _notification(district: str, kind: NotificationKind, *rules: str) -> Notification:
    alerts = [_alert(district, r) for r in (rules or ("grievance_surge",))]
    return Notification(f"n-{district}-{kind}", kind, district, alerts, 1_780_000_120_000)


def _expected(entry: dict[str, object], role: str) -> set[tuple[str, str, str, str]]:
    """Recipients of one directory entry, computed straight from the YAML (the oracle)."""
    out = set()
    contacts = entry["contacts"]
    assert isinstance(contacts, dict)
    for channel, value in contacts.items():
        if channel == "log":
            out.add((role, str(entry["name"]), "log", ""))
            continue
        for address in value if isinstance(value, list) else [value]:
            out.add((role, str(entry["name"]), channel, address))
    return out


def _as_set(recipients: list[Recipient]) -> set[tuple[str, str, str, str]]:
    return {(r.role, r.name, r.channel, r.address) for r in recipients}


@pytest.fixture(scope="module")
def example() -> tuple[Directory, dict[str, object]]:
    return load_directory(EXAMPLE), yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind", [NotificationKind.FIRING, NotificationKind.REPEAT, "resolved"])
def test_district_notifications_go_to_the_chief_and_the_war_room(
    example: tuple[Directory, dict[str, object]], kind: str
) -> None:
    directory, raw = example
    districts, war_room = raw["districts"], raw["war_room"]
    assert isinstance(districts, dict) and isinstance(war_room, dict)
    for code in ("5001", "1001"):
        got = directory.recipients_for(_notification(code, NotificationKind(kind)))
        want = _expected(districts[code], "chief") | _expected(war_room, "war_room")
        assert _as_set(got) == want
        assert len(got) == len(want), "each address once"


def test_escalation_goes_to_the_governor_not_the_chief(
    example: tuple[Directory, dict[str, object]],
) -> None:
    directory, raw = example
    provinces, war_room = raw["provinces"], raw["war_room"]
    assert isinstance(provinces, dict) and isinstance(war_room, dict)
    got = directory.recipients_for(_notification("5001", NotificationKind.ESCALATION))
    assert _as_set(got) == _expected(provinces["50"], "governor") | _expected(war_room, "war_room")
    got_bkk = directory.recipients_for(_notification("1001", NotificationKind.ESCALATION))
    assert _as_set(got_bkk) == _expected(provinces["10"], "governor") | _expected(
        war_room, "war_room"
    )


def test_unlisted_codes_use_defaults_or_only_the_war_room(
    example: tuple[Directory, dict[str, object]], caplog: pytest.LogCaptureFixture
) -> None:
    directory, raw = example
    war_room, defaults = raw["war_room"], raw["defaults"]
    assert isinstance(war_room, dict) and isinstance(defaults, dict)
    # Khon Kaen (40) has no chief and no governor in the example; defaults has a governor only
    with caplog.at_level(logging.WARNING, logger="alerts.directory"):
        got = directory.recipients_for(_notification("4001", NotificationKind.FIRING))
    assert _as_set(got) == _expected(war_room, "war_room")
    assert "chief of district 4001" in caplog.text
    got = directory.recipients_for(_notification("4001", NotificationKind.ESCALATION))
    # the default governor also logs: the war room's log contact is the same address, sent once
    governor = _expected(defaults["governor"], "governor")
    want = governor | {
        w
        for w in _expected(war_room, "war_room")
        if (w[2], w[3]) not in {(g[2], g[3]) for g in governor}
    }
    assert _as_set(got) == want
    assert len(got) == len(want)


def test_ops_team_receives_only_its_rules(example: tuple[Directory, dict[str, object]]) -> None:
    directory, raw = example
    ops = raw["ops"]
    assert isinstance(ops, dict)
    ops_set = _expected(ops, "ops")
    silent = directory.recipients_for(
        _notification("5001", NotificationKind.FIRING, "grievance_surge", "silent_district")
    )
    assert ops_set <= _as_set(silent)
    surge = directory.recipients_for(_notification("5001", NotificationKind.FIRING))
    assert not ops_set & _as_set(surge)


def test_shared_address_is_notified_once() -> None:
    doc = textwrap.dedent(
        """
        war_room: {name: War room, contacts: {email: [room@moi.example.go.th, x@moi.example.go.th]}}
        districts:
          "5001": {name: Chief, contacts: {email: room@moi.example.go.th}}
        """
    )
    got = parse_directory(doc).recipients_for(_notification("5001", NotificationKind.FIRING))
    assert [(r.role, r.address) for r in got] == [
        ("chief", "room@moi.example.go.th"),
        ("war_room", "x@moi.example.go.th"),
    ]


def test_unquoted_codes_are_accepted() -> None:
    doc = WAR_ROOM + "provinces:\n  50: {name: G, contacts: {log: true}}\n"
    assert set(parse_directory(doc).provinces) == {"50"}


def test_default_directory_routes_to_the_log_sink_and_optional_webhook() -> None:
    d = default_directory()
    got = d.recipients_for(_notification("5001", NotificationKind.FIRING))
    assert [(r.channel, r.address) for r in got] == [("log", "")]
    d = default_directory(webhook_url="http://127.0.0.1:8099/hook")
    got = d.recipients_for(_notification("5001", NotificationKind.ESCALATION))
    assert [(r.channel, r.address) for r in got] == [
        ("log", ""),
        ("webhook", "http://127.0.0.1:8099/hook"),
    ]
    assert load_directory(None).recipients_for(
        _notification("1001", NotificationKind.FIRING)
    ) == default_directory().recipients_for(_notification("1001", NotificationKind.FIRING))
    with pytest.raises(DirectoryError, match="not an http"):
        default_directory(webhook_url="localhost:8099")


WAR_ROOM = "war_room: {name: W, contacts: {log: true}}\n"
HEX = "0123456789abcdef" * 2

# (document, line of the problem, words the message must contain)
BAD = [
    (WAR_ROOM + 'districts:\n  "9999": {name: C, contacts: {log: true}}\n', 3, "unknown district"),
    (WAR_ROOM + 'provinces:\n  "99": {name: G, contacts: {log: true}}\n', 3, "unknown province"),
    (WAR_ROOM + 'provinces:\n  "5001": {name: G, contacts: {log: true}}\n', 3, "unknown province"),
    ("war_room: {name: W, contacts: {sms: '0812345678'}}\n", 1, "unknown channel 'sms'"),
    ("war_room:\n  name: W\n  contacts:\n    line: U" + HEX[:31] + "\n", 4, "not a LINE id"),
    ("war_room:\n  name: W\n  contacts:\n    line: X" + HEX + "\n", 4, "not a LINE id"),
    ("war_room:\n  name: W\n  contacts:\n    line: U" + HEX.upper() + "\n", 4, "not a LINE id"),
    ("war_room:\n  name: W\n  contacts:\n    email: [a@b.go.th, nobody]\n", 4, "not an e-mail"),
    ("war_room:\n  name: W\n  contacts:\n    email: a b@c.go.th\n", 4, "not an e-mail"),
    ("war_room:\n  name: W\n  contacts:\n    webhook: 127.0.0.1:80/x\n", 4, "not an http"),
    ("war_room:\n  name: W\n  contacts:\n    alertmanager: http://h:99999\n", 4, "invalid port"),
    ("war_room:\n  name: W\n  contacts:\n    log: yes please\n", 4, "log takes `true`"),
    (
        WAR_ROOM + 'districts:\n  "5001": {name: A, contacts: {log: true}}\n'
        '  "5001": {name: B, contacts: {log: true}}\n',
        4,
        "duplicate entry '5001' (first at line 3)",
    ),
    ("war_room: {name: W, contacts: {email: [a@b.go.th, a@b.go.th]}}\n", 1, "duplicate email"),
    ("ops: {name: O, contacts: {log: true}}\n", 1, "`war_room` is required"),
    (WAR_ROOM + 'districts:\n  "5001": {contacts: {log: true}}\n', 3, "needs a non-empty `name`"),
    (WAR_ROOM + 'districts:\n  "5001": {name: C}\n', 3, "needs `contacts`"),
    (WAR_ROOM + "war_rooms: {}\n", 2, "unknown top-level key 'war_rooms'"),
    (WAR_ROOM + "defaults: {chef: {name: C, contacts: {log: true}}}\n", 2, "unknown key 'chef'"),
    (WAR_ROOM + "version: 2\n", 2, "version must be 1"),
    ("war_room: {name: W, contacts: {log: true}\n", 2, "not valid YAML"),
    ("", 1, "empty"),
]


@pytest.mark.parametrize(("doc", "line", "words"), BAD)
def test_invalid_directory_names_the_line_and_the_problem(doc: str, line: int, words: str) -> None:
    with pytest.raises(DirectoryError) as info:
        parse_directory(doc, source="dir.yaml")
    assert any(p.startswith(f"{line}:") and words in p for p in info.value.problems), (
        info.value.problems
    )
    assert f"dir.yaml:{line}:" in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    doc = (
        "war_room: {name: W, contacts: {log: true, pager: x}}\n"
        "districts:\n"
        '  "9999": {name: C, contacts: {log: true}}\n'
        '  "5001": {name: C, contacts: {email: nope}}\n'
    )
    with pytest.raises(DirectoryError) as info:
        parse_directory(doc)
    assert [p.split(":")[0] for p in info.value.problems] == ["1", "3", "4"]


def test_unreadable_file_is_a_directory_error(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="cannot read"):
        load_directory(tmp_path / "missing.yaml")
