"""The lock files pin, with hashes, exactly what pyproject.toml's ranges ask for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _locked(name: str) -> dict[str, tuple[Version, int]]:
    """package -> (pinned version, number of hashes) from requirements/<name>.txt."""
    pins: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for line in (ROOT / "requirements" / f"{name}.txt").read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match[1])
            pins[current] = (Version(match[2]), 0)
        elif current and "--hash=sha256:" in line:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    if extra:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    build = (ROOT / "requirements" / "build.in").read_text().splitlines()
    reqs += [Requirement(r) for r in build if r.strip() and not r.startswith("#")]
    return reqs


@pytest.mark.parametrize(("lock", "extra"), [("runtime", None), ("dev", "dev")])
def test_every_declared_dependency_is_pinned_inside_its_range(lock: str, extra: str | None) -> None:
    pins = _locked(lock)
    for req in _declared(extra):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements/{lock}.txt: run ./dev lock"
        version, _ = pins[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{req.name}=={version} in requirements/{lock}.txt is outside {req.specifier}: "
            "run ./dev lock"
        )


@pytest.mark.parametrize("lock", ["runtime", "dev"])
def test_every_pin_carries_a_hash(lock: str) -> None:
    unhashed = [name for name, (_, hashes) in _locked(lock).items() if hashes == 0]
    assert not unhashed
    assert len(_locked(lock)) > 30  # the parser found the pins, not an empty file


def test_runtime_pins_agree_with_dev_pins() -> None:
    # ./dev up and ./dev test must run the same versions of what they share
    dev = _locked("dev")
    runtime = _locked("runtime")
    assert {n: v for n, (v, _) in runtime.items()} == {n: dev[n][0] for n in runtime}
