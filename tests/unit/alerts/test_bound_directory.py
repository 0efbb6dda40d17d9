"""LINE bindings added to the routing directory: an active binding reaches the chief on LINE,
an unreachable one falls back to the entry's other channels; the war room always stays."""

from __future__ import annotations

from alerts.bound_directory import identify, with_bindings
from alerts.contacts_store import ACTIVE, UNREACHABLE, Binding
from alerts.directory import parse_directory
from alerts.model import Notification, NotificationKind

U1 = "U" + "1" * 32
DOC = """
war_room: {name: war room, contacts: {log: true}}
districts:
  "5001": {name: นายอำเภอเมืองเชียงใหม่, contacts: {email: chief5001@example.go.th}}
"""


def _binding(area: str, status: str, role: str = "chief") -> Binding:
    return Binding(role, area, f"name {area}", U1, status, "ABCDEFGH", 1, 2)


def _routes(directory: object, district: str) -> set[tuple[str, str]]:
    n = Notification("n1", NotificationKind.FIRING, district, [], 0)
    return {(r.channel, r.address) for r in directory.recipients_for(n)}  # type: ignore[attr-defined]


def test_active_binding_adds_line_and_keeps_email() -> None:
    d = with_bindings(parse_directory(DOC), [_binding("5001", ACTIVE)])
    assert _routes(d, "5001") == {
        ("line", U1),
        ("email", "chief5001@example.go.th"),
        ("log", ""),
    }


def test_unreachable_binding_falls_back_to_email() -> None:
    d = with_bindings(parse_directory(DOC), [_binding("5001", UNREACHABLE)])
    assert _routes(d, "5001") == {("email", "chief5001@example.go.th"), ("log", "")}


def test_binding_for_a_district_not_in_the_file_creates_its_entry() -> None:
    d = with_bindings(parse_directory(DOC), [_binding("1001", ACTIVE)])
    assert _routes(d, "1001") == {("line", U1), ("log", "")}
    assert d.districts["1001"].name == "name 1001"


def test_identify_names_tokens_contacts() -> None:
    base = parse_directory(DOC)
    bindings = [_binding("5001", ACTIVE)]
    d = with_bindings(base, bindings)
    assert identify(d, bindings, U1) == "นายอำเภอเมืองเชียงใหม่"  # the file's name wins
    gone = [_binding("5001", UNREACHABLE)]
    assert identify(with_bindings(base, gone), gone, U1) == "name 5001"
    assert identify(d, bindings, "chief:5001") == "นายอำเภอเมืองเชียงใหม่"
    assert identify(d, bindings, "governor:50") == "ผู้ว่าราชการจังหวัดเชียงใหม่"
    assert identify(d, bindings, "war_room") == "war room"
    assert identify(d, bindings, "U" + "9" * 32) == ""
