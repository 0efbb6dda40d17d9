"""The routing directory as the file says plus the LINE bindings of the contacts store.

An active binding adds the bound LINE id to its chief's or governor's entry; an unreachable one
(the contact blocked the account) removes it, so that entry's other channels (e-mail) remain
and the war room still receives everything. `identify` names the person behind a token's
contact for the acknowledgement record (the directory's name first, then the invite's).
"""

from __future__ import annotations

import dataclasses

from alerts.contacts_store import ACTIVE, Binding
from alerts.directory import Contact, Directory, Entry
from alerts.enrolment import default_name

__all__ = ["identify", "with_bindings"]


def with_bindings(directory: Directory, bindings: list[Binding]) -> Directory:
    districts = dict(directory.districts)
    provinces = dict(directory.provinces)
    for b in bindings:
        table = districts if b.role == "chief" else provinces
        entry = table.get(b.area)
        contacts = list(entry.contacts) if entry is not None else []
        line = Contact("line", b.line_user)
        if b.status == ACTIVE:
            if line not in contacts:
                contacts.append(line)
        elif line in contacts:
            contacts.remove(line)
        # an entry left without contacts stays (empty): falling back to `defaults` would send
        # a district's alerts to whoever the default names
        name = entry.name if entry is not None else b.name
        table[b.area] = Entry(b.role, name, tuple(contacts))
    return dataclasses.replace(directory, districts=districts, provinces=provinces)


def identify(directory: Directory, bindings: list[Binding], contact: str) -> str:
    """The directory name for a token contact: a LINE id, ``chief:5001``, ``governor:50``,
    ``war_room`` or ``ops``; '' when nobody is known by it."""
    role, _, area = contact.partition(":")
    if role == "chief" and area:
        entry = directory.chief(area)
        return entry.name if entry is not None else default_name("chief", area)
    if role == "governor" and area:
        entry = directory.governor(area)
        return entry.name if entry is not None else default_name("governor", area)
    if role == "war_room":
        return directory.war_room.name
    if role == "ops" and directory.ops is not None:
        return directory.ops.name
    entries = [directory.war_room, directory.ops, directory.default_chief]
    entries += [directory.default_governor, *directory.provinces.values()]
    entries += list(directory.districts.values())
    # the file's name wins over the invite's: the directory is what operators keep current
    for e in entries:
        if e is not None and any(c.channel == "line" and c.address == contact for c in e.contacts):
            return e.name
    for b in bindings:  # bound, but unreachable now (no longer in the entry's contacts)
        if b.line_user == contact:
            return b.name
    return ""
