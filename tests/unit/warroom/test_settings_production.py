"""Production mode refuses unsafe settings (issue 12, defect 11): one plain line per problem,
exit 2, no traceback; a safe production environment starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams.pdpa import DEV_KEY
from warroom.settings import SettingsError, load

GOOD = {
    "WARROOM_MODE": "production",
    "WARROOM_PSEUDONYM_KEY": "pk-" + "x" * 40,
    "WARROOM_STORE": "clickhouse://clickhouse:9000/warroom",
    "WARROOM_STORE_USER": "warroom_writer",
    "WARROOM_STORE_PASSWORD": "w/#?%2F@:" + "p" * 20,
    "WARROOM_WEB_HOST": "0.0.0.0",
    "WARROOM_WEB_PASSWORD": "web-" + "y" * 30,
}


def test_a_safe_production_environment_loads() -> None:
    assert load(GOOD).mode == "production"
    # loopback needs no web password; an embedded store no ClickHouse account
    loopback = {**GOOD, "WARROOM_WEB_HOST": "127.0.0.1", "WARROOM_WEB_PASSWORD": ""}
    assert load(loopback).web_host == "127.0.0.1"
    assert (
        load({k: v for k, v in loopback.items() if not k.startswith("WARROOM_STORE")}).store == ""
    )


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"WARROOM_PSEUDONYM_KEY": ""}, ["WARROOM_PSEUDONYM_KEY"]),
        ({"WARROOM_PSEUDONYM_KEY": DEV_KEY}, ["WARROOM_PSEUDONYM_KEY is the development key"]),
        ({"WARROOM_PSEUDONYM_KEY": "change-me"}, ["WARROOM_PSEUDONYM_KEY is the placeholder"]),
        ({"WARROOM_STORE_PASSWORD": ""}, ["WARROOM_STORE_PASSWORD"]),
        ({"WARROOM_STORE_PASSWORD": "change-me"}, ["WARROOM_STORE_PASSWORD"]),
        ({"WARROOM_STORE_PASSWORD": "short"}, ["shorter than 16"]),
        (
            {
                "WARROOM_STORE": "clickhouse://clickhouse:9000/warroom",
                "WARROOM_STORE_USER": "",
                "WARROOM_STORE_PASSWORD": "",
            },
            ["default account", "WARROOM_STORE_PASSWORD"],
        ),
        ({"WARROOM_WEB_PASSWORD": ""}, ["WARROOM_WEB_HOST=0.0.0.0"]),
        ({"WARROOM_WEB_HOST": "::", "WARROOM_WEB_PASSWORD": ""}, ["WARROOM_WEB_HOST=::"]),
        ({"WARROOM_WEB_PASSWORD": "change-me"}, ["WARROOM_WEB_PASSWORD is the placeholder"]),
        ({"WARROOM_STORE_TOKEN": "abc"}, ["WARROOM_STORE_TOKEN is shorter"]),
    ],
)
def test_each_unsafe_setting_is_one_line(change: dict[str, str], names: list[str]) -> None:
    with pytest.raises(SettingsError) as info:
        load({**GOOD, **change})
    lines = str(info.value).splitlines()
    assert len(lines) == len(names), lines
    for line, name in zip(lines, names, strict=True):
        assert name in line
    # the embedded default mode takes the same values (development)
    load({**GOOD, **change, "WARROOM_MODE": "embedded"})


def test_the_command_prints_every_problem_and_exits_2() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update(
        {
            **GOOD,
            "WARROOM_PSEUDONYM_KEY": DEV_KEY,
            "WARROOM_STORE_PASSWORD": "change-me",
            "WARROOM_WEB_PASSWORD": "",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "warroom.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, done.stderr
    assert all(line.startswith("warroom: ") for line in lines)
    assert "Traceback" not in done.stderr
    assert "change-me" in lines[1] and "CLICKHOUSE_WRITER_PASSWORD" in lines[1]
