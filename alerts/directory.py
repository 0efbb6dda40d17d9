"""Routing directory: who receives a district's notifications, on which channels, validated at load.

The file is YAML (see alerts/directory.example.yaml)::

    war_room:                       # required: receives every notification
      name: ศูนย์ปฏิบัติการ กระทรวงมหาดไทย (MOI war room)
      contacts: {webhook: "https://...", alertmanager: "http://...:9093", log: true}
    ops:                            # optional: receives notifications of the listed rules
      name: ทีมดูแลระบบ (ops)
      rules: [silent_district]
      contacts: {email: ops@example.go.th}
    provinces:                      # province code -> the governor
      "50": {name: ผู้ว่าราชการจังหวัดเชียงใหม่, contacts: {line: C..., email: [a@b, c@d]}}
    districts:                      # district code -> the chief (นายอำเภอ / ผู้อำนวยการเขต)
      "5001": {name: นายอำเภอเมืองเชียงใหม่, contacts: {line: U...}}
    defaults:                       # optional fallbacks for codes not listed
      chief: {name: ..., contacts: {...}}
      governor: {name: ..., contacts: {...}}

A contact value is one address or a list of addresses; `log: true` routes to the log sink.
Problems are collected and raised together as one DirectoryError, each with its line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from alerts.model import Notification, NotificationKind, Recipient
from streams import geography

__all__ = [
    "CHANNELS",
    "Contact",
    "Directory",
    "DirectoryError",
    "Entry",
    "default_directory",
    "load_directory",
    "parse_directory",
]

log = logging.getLogger(__name__)

#: every channel a contact may name; the notifier needs a channel object for each one used
CHANNELS = ("line", "email", "webhook", "alertmanager", "log")

# LINE ids: user U + 32 hex, group C + 32 hex, multi-person chat (room) R + 32 hex
_LINE_ID = re.compile(r"^[UCR][0-9a-f]{32}$")
# deliberately simple (RFC 5322 is not what officials type): one @, no spaces, a dotted domain
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_TOP_KEYS = frozenset({"version", "war_room", "ops", "provinces", "districts", "defaults"})
_ENTRY_KEYS = frozenset({"name", "contacts"})
#: missing directory entries already warned about (see Directory.recipients_for)
_WARNED: set[str] = set()


class DirectoryError(ValueError):
    """The directory file is invalid; `problems` lists every problem with its line."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {source}:{p}" for p in self.problems)
        super().__init__(f"invalid alert directory ({len(self.problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class Contact:
    channel: str
    address: str  # '' for the log channel


@dataclass(frozen=True)
class Entry:
    """One person or team and where to reach them."""

    role: str  # chief | governor | war_room | ops
    name: str
    contacts: tuple[Contact, ...]

    def recipients(self) -> list[Recipient]:
        return [Recipient(self.role, self.name, c.channel, c.address) for c in self.contacts]


@dataclass(frozen=True)
class Directory:
    war_room: Entry
    ops: Entry | None = None
    ops_rules: frozenset[str] = frozenset()
    provinces: dict[str, Entry] = field(default_factory=dict)
    districts: dict[str, Entry] = field(default_factory=dict)
    default_chief: Entry | None = None
    default_governor: Entry | None = None
    source: str = "<default>"

    def chief(self, district_code: str) -> Entry | None:
        return self.districts.get(district_code, self.default_chief)

    def governor(self, province_code: str) -> Entry | None:
        return self.provinces.get(province_code, self.default_governor)

    def channels_used(self) -> set[str]:
        entries: list[Entry | None] = [self.war_room, self.ops, self.default_chief]
        entries += [self.default_governor, *self.provinces.values(), *self.districts.values()]
        return {c.channel for e in entries if e is not None for c in e.contacts}

    def recipients_for(self, notification: Notification) -> list[Recipient]:
        """The district's chief (firing, repeat, resolved) or the province's governor
        (escalation), plus the war room, plus ops for its rules; each address once."""
        primary: Entry | None
        if notification.kind is NotificationKind.ESCALATION:
            primary = self.governor(notification.province_code)
            missing = f"governor of province {notification.province_code}"
        else:
            primary = self.chief(notification.district_code)
            missing = f"chief of district {notification.district_code}"
        routed = self.districts or self.provinces or self.default_chief or self.default_governor
        if primary is None and routed and missing not in _WARNED:
            # the war room still gets it, so nothing is dropped; the gap in the file is visible
            # (once per missing entry: a busy district must not flood the log). A directory
            # without any chief or governor (the default) routes to the war room on purpose.
            _WARNED.add(missing)
            log.warning(
                "no %s in the alert directory; only the war room is notified",
                missing,
                extra={"notification_id": notification.notification_id},
            )
        entries = [primary, self.war_room]
        if self.ops is not None and any(a.rule_id in self.ops_rules for a in notification.alerts):
            entries.append(self.ops)
        return _unique(r for e in entries if e is not None for r in e.recipients())


def _unique(recipients: Iterable[Recipient]) -> list[Recipient]:
    seen: set[tuple[str, str]] = set()
    out: list[Recipient] = []
    for r in recipients:
        if (r.channel, r.address) not in seen:
            seen.add((r.channel, r.address))
            out.append(r)
    return out


def default_directory(webhook_url: str = "", alertmanager_url: str = "") -> Directory:
    """For the embedded run: everything goes to the war room's log sink (and a local webhook
    or Alertmanager when given), so `warroom up` works without anyone's real contacts."""
    contacts = [Contact("log", "")]
    if webhook_url:
        contacts.append(Contact("webhook", webhook_url))
    if alertmanager_url:
        contacts.append(Contact("alertmanager", alertmanager_url))
    problems = [p for c in contacts[1:] if (p := _check_address(c.channel, c.address)) is not None]
    if problems:
        raise DirectoryError("<default>", [f"0: {p}" for p in problems])
    war_room = Entry("war_room", "ศูนย์ปฏิบัติการ (war room)", tuple(contacts))
    return Directory(war_room=war_room)


def load_directory(path: str | Path | None) -> Directory:
    """Read and validate a directory file; None gives the default (log sink only)."""
    if path is None or str(path) == "":
        return default_directory()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectoryError(str(p), [f"0: cannot read the file: {exc}"]) from exc
    return parse_directory(text, source=str(p))


# --- parsing: walk PyYAML's node graph, which keeps line numbers and shows duplicate keys ---


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []

    def add(self, node: yaml.Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        self.items.append((line, message))


def _scalar(node: yaml.Node) -> Any:
    """A node's plain value with YAML 1.1 typing (so `true` is a bool and 10 an int)."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _mapping(node: yaml.Node, what: str, problems: _Problems) -> list[tuple[str, yaml.Node]]:
    """(key, value node) pairs of a mapping node; duplicate keys and non-mappings reported."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, f"{what} must be a mapping")
        return []
    out: list[tuple[str, yaml.Node]] = []
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(_scalar(key_node)) if isinstance(key_node, yaml.ScalarNode) else None
        if key is None:
            problems.add(key_node, f"{what}: keys must be plain values")
            continue
        if key in seen:
            problems.add(key_node, f"{what}: duplicate entry {key!r} (first at line {seen[key]})")
            continue
        seen[key] = key_node.start_mark.line + 1
        out.append((key, value_node))
    return out


def _check_address(channel: str, address: str) -> str | None:
    if channel == "line":
        if not _LINE_ID.match(address):
            return (
                f"line: {address!r} is not a LINE id (user U, group C or room R followed "
                "by 32 lowercase hex digits)"
            )
    elif channel == "email":
        if not _EMAIL.match(address) or "." not in address.rsplit("@", 1)[-1]:
            return f"email: {address!r} is not an e-mail address"
    elif channel in ("webhook", "alertmanager"):
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{channel}: {address!r} is not an http(s) URL"
        try:
            _ = parts.port
        except ValueError:
            return f"{channel}: {address!r} has an invalid port"
    return None


def _contacts(node: yaml.Node, what: str, problems: _Problems) -> tuple[Contact, ...]:
    out: list[Contact] = []
    for channel, value_node in _mapping(node, f"{what} contacts", problems):
        if channel not in CHANNELS:
            problems.add(
                value_node,
                f"{what}: unknown channel {channel!r} (known: {', '.join(CHANNELS)})",
            )
            continue
        if channel == "log":
            value = _scalar(value_node) if isinstance(value_node, yaml.ScalarNode) else None
            if value is not True:
                problems.add(value_node, f"{what}: log takes `true`")
            else:
                out.append(Contact("log", ""))
            continue
        if isinstance(value_node, yaml.SequenceNode):
            items = list(value_node.value)
        else:
            items = [value_node]
        if not items:
            problems.add(value_node, f"{what}: {channel} has an empty list")
        for item in items:
            value = _scalar(item) if isinstance(item, yaml.ScalarNode) else None
            if not isinstance(value, str) or not value.strip():
                problems.add(item, f"{what}: {channel} address must be a non-empty string")
                continue
            address = value.strip()
            problem = _check_address(channel, address)
            if problem is not None:
                problems.add(item, f"{what}: {problem}")
            elif Contact(channel, address) in out:
                problems.add(item, f"{what}: duplicate {channel} address {address!r}")
            else:
                out.append(Contact(channel, address))
    return tuple(out)


def _entry(
    node: yaml.Node,
    role: str,
    what: str,
    problems: _Problems,
    extra_keys: frozenset[str] = frozenset(),
) -> Entry | None:
    pairs = dict(_mapping(node, what, problems))
    for key in pairs.keys() - _ENTRY_KEYS - extra_keys:
        problems.add(pairs[key], f"{what}: unknown key {key!r}")
    name_node = pairs.get("name")
    name = _scalar(name_node) if isinstance(name_node, yaml.ScalarNode) else None
    if not isinstance(name, str) or not name.strip():
        problems.add(name_node or node, f"{what}: needs a non-empty `name`")
        name = ""
    contacts_node = pairs.get("contacts")
    if contacts_node is None:
        problems.add(node, f"{what}: needs `contacts`")
        return None
    before = len(problems.items)
    contacts = _contacts(contacts_node, what, problems)
    if not contacts and len(problems.items) == before:
        problems.add(contacts_node, f"{what}: has no contacts")
    if len(problems.items) != before or not name:
        return None
    return Entry(role, name.strip(), contacts)


def parse_directory(text: str, source: str = "<string>") -> Directory:
    """Validate a directory document; raises DirectoryError listing every problem."""
    problems = _Problems()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise DirectoryError(source, [f"{line}: not valid YAML: {exc}"]) from exc
    if root is None:
        raise DirectoryError(source, ["1: the file is empty (it needs at least `war_room`)"])
    top = dict(_mapping(root, "the document", problems))
    for key in top.keys() - _TOP_KEYS:
        problems.add(top[key], f"unknown top-level key {key!r} (known: {sorted(_TOP_KEYS)})")
    if "version" in top and _scalar(top["version"]) != 1:
        problems.add(top["version"], "version must be 1")

    war_room: Entry | None = None
    if "war_room" not in top:
        problems.add(root, "`war_room` is required: it receives every notification")
    else:
        war_room = _entry(top["war_room"], "war_room", "war_room", problems)

    ops: Entry | None = None
    ops_rules: frozenset[str] = frozenset()
    if "ops" in top:
        ops = _entry(top["ops"], "ops", "ops", problems, frozenset({"rules"}))
        rules_node = dict(_mapping(top["ops"], "ops", _Problems())).get("rules")
        if rules_node is not None:
            rules = _scalar(rules_node)
            if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
                problems.add(rules_node, "ops: rules must be a list of rule ids")
            else:
                ops_rules = frozenset(rules)

    provinces: dict[str, Entry] = {}
    if "provinces" in top:
        for code, node in _mapping(top["provinces"], "provinces", problems):
            prov = geography.province(code)
            if prov is None:
                problems.add(node, f"provinces: unknown province code {code!r}")
                continue
            entry = _entry(node, "governor", f"province {code} ({prov.name_en})", problems)
            if entry is not None:
                provinces[code] = entry

    districts: dict[str, Entry] = {}
    if "districts" in top:
        for code, node in _mapping(top["districts"], "districts", problems):
            dist = geography.district(code)
            if dist is None:
                problems.add(node, f"districts: unknown district code {code!r}")
                continue
            entry = _entry(node, "chief", f"district {code} ({dist.name_en})", problems)
            if entry is not None:
                districts[code] = entry

    default_chief = default_governor = None
    if "defaults" in top:
        for key, node in _mapping(top["defaults"], "defaults", problems):
            if key == "chief":
                default_chief = _entry(node, "chief", "defaults.chief", problems)
            elif key == "governor":
                default_governor = _entry(node, "governor", "defaults.governor", problems)
            else:
                problems.add(node, f"defaults: unknown key {key!r} (known: chief, governor)")

    if problems.items or war_room is None:
        raise DirectoryError(source, [f"{line}: {msg}" for line, msg in sorted(problems.items)])
    return Directory(
        war_room=war_room,
        ops=ops,
        ops_rules=ops_rules,
        provinces=provinces,
        districts=districts,
        default_chief=default_chief,
        default_governor=default_governor,
        source=source,
    )
