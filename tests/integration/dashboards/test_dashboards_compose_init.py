"""The compose `init` service's topic step, run as compose runs it (sh -c, production env)
against the real test broker: it creates every topic with warroom's explicit configs, and a
second run (a restart of the stack) changes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from streams.topics import Topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def _topic_step() -> str:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    command = compose["services"]["init"]["command"]
    assert command[:2] == ["sh", "-c"]
    topic_step, migrate_step = command[2].split(" && ")
    assert migrate_step.strip() == "warroom migrate"
    return topic_step


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_init_creates_the_topics_once(bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "WARROOM_MODE": "production",
        "WARROOM_KAFKA": bootstrap,
        "WARROOM_PSEUDONYM_KEY": "k" * 48,
        "WARROOM_PARTITIONS": "4",
        "WARROOM_TOPIC_PREFIX": prefix,
    }
    first = subprocess.run(
        ["sh", "-c", _topic_step()], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    expected = set(Topics(prefix).all())
    assert expected <= asyncio.run(_topics(bootstrap))
    assert all(name in first.stdout for name in expected)
    second = subprocess.run(
        ["sh", "-c", _topic_step()], env=env, capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "created []"
