"""TEMPORARY stand-in for the real pipeline's store, until the lead's worker fixture lands.

Run as a subprocess (chdb serves one data path per process, and pytest's process may hold
another): creates the schema with the sinks migration runner (so ref_provinces/ref_districts
are the real reference geography), fills every table with realistic rows generated here from
simulated grievance lifecycles and project reports, and answers queries over the sinks
package's read-only ClickHouse-HTTP endpoint (the one the worker serves).
Usage: python temp_warehouse.py DATA_DIR ANCHOR_EPOCH_S

The rows are derived from the simulated events the way the design describes the metrics, but
by this script, not by the pipeline: replace it with the real pipeline's output.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from sinks.backends.chdb import ChdbBackend
from sinks.http_query import QueryService, make_app
from sinks.migrate import migrate
from streams import geography
from streams.broker import free_port
from streams.contract import CATEGORIES, CHANNELS, OPEN_TYPES, PROGRAMS
from streams.sla import sla_days
from streams.timeutil import fiscal_year_be

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
LES = ("3600", "14400", "86400", "259200", "604800", "1296000", "2592000", "+Inf")
PARTITIONS = 4
SOURCES = ("hotline-1567", "district-office", "traffy-import")


def _partition(district: str) -> int:
    return int(hashlib.sha1(district.encode()).hexdigest(), 16) % PARTITIONS


class Gen:
    def __init__(self, anchor_ms: int) -> None:
        self.rng = random.Random(20251001)
        self.a = anchor_ms - anchor_ms % MIN
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        provinces = {p.code: p for p in geography.provinces()}
        districts = geography.districts()
        chosen = self.rng.sample(districts, 110)
        # every region present, and Bangkok's first khet
        for _, _, codes in geography.REGIONS.values():
            if not any(d.province_code in codes for d in chosen):
                chosen.append(next(d for d in districts if d.province_code in codes))
        chosen.append(geography.district("1001"))  # type: ignore[arg-type]
        self.districts = sorted({d.code: d for d in chosen if d}.values(), key=lambda d: d.code)
        self.geo = {
            d.code: (d.province_code, provinces[d.province_code].region) for d in self.districts
        }

    def base(self, district: str) -> dict[str, Any]:
        prov, region = self.geo[district]
        return {"district_code": district, "province_code": prov, "region": region}

    # --- grievances --------------------------------------------------------------------------

    def grievances(self) -> None:
        rng = self.rng
        for d in self.districts:
            part = _partition(d.code)
            hot = rng.random() < 0.15  # a few districts surge in the last hour
            n = rng.randint(15, 60)
            times = [self.a - int(rng.random() ** 2 * 16 * DAY) for _ in range(n)]
            if hot:
                times += [self.a - rng.randint(0, HOUR - MIN) for _ in range(rng.randint(5, 15))]
            for i, t0 in enumerate(sorted(times)):
                gid = f"G{d.code}-{i:05d}"
                cat = rng.choice(CATEGORIES)
                prio = "urgent" if rng.random() < 0.15 else "normal"
                due = t0 + sla_days(cat, prio) * DAY
                pseud = hashlib.sha256(f"p{rng.randint(0, 400)}".encode()).hexdigest()[:32]
                common = {
                    "grievance_id": gid,
                    "category": cat,
                    "channel": rng.choice(CHANNELS),
                    "priority": prio,
                    "source": rng.choice(SOURCES),
                }
                plan: list[tuple[str, int]] = []
                if rng.random() < 0.03:
                    plan.append(("rejected", 24))
                elif rng.random() < 0.85:
                    plan.append(("assigned", 12))
                    if rng.random() < 0.8:
                        plan.append(("in_progress", 48))
                    if rng.random() < 0.1:
                        plan.append(("escalated", 48))
                    if rng.random() < 0.75:
                        plan.append(("resolved", 24 * 12))
                        if rng.random() < 0.08:
                            plan += [("reopened", 72), ("resolved", 96)]
                        if rng.random() < 0.8:
                            plan.append(("closed", 48))
                steps = [("received", t0)]
                t = t0
                for kind, span in plan:
                    t += rng.randint(MIN, span * HOUR)
                    if t > self.a:
                        break
                    steps.append((kind, t))
                for k, (kind, at) in enumerate(steps):
                    self.rows["grievance_events"].append(
                        {
                            **self.base(d.code),
                            **common,
                            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                            "occurred_at": at,
                            "subdistrict_code": "",
                            "type": kind,
                            "due_at": due if kind == "received" else None,
                            "agency": "",
                            "complainant_kind": "citizen_id" if k == 0 else "",
                            "complainant_pseudonym": pseud if k == 0 else "",
                            "kafka_partition": part,
                            "kafka_offset": len(self.rows["grievance_events"]),
                            "ingested_at": at + 800,
                        }
                    )

    def grievance_metrics(self) -> None:
        buckets: dict[tuple[str, str, str, str, int], float] = defaultdict(float)
        received: dict[str, tuple[int, int, str]] = {}
        events = sorted(self.rows["grievance_events"], key=lambda e: e["occurred_at"])
        for e in events:
            minute = e["occurred_at"] - e["occurred_at"] % MIN
            d, cat = e["district_code"], e["category"]
            buckets[(d, "grievance_event", e["type"], cat, minute)] += 1
            if e["type"] == "received":
                buckets[(d, "grievance_received", cat, e["channel"], minute)] += 1
                received[e["grievance_id"]] = (e["occurred_at"], e["due_at"], cat)
            if e["type"] == "resolved" and e["grievance_id"] in received:
                t0, due, _ = received[e["grievance_id"]]
                secs = (e["occurred_at"] - t0) / 1000
                buckets[(d, "grievance_resolved_seconds_sum", cat, "", minute)] += secs
                buckets[(d, "grievance_resolved_seconds_count", cat, "", minute)] += 1
                for le in LES:
                    if le == "+Inf" or secs <= float(le):
                        buckets[(d, "grievance_resolved_seconds_bucket", cat, le, minute)] += 1
                met = "met" if e["occurred_at"] <= due else "missed"
                buckets[(d, "grievance_resolved_sla", cat, met, minute)] += 1
        for (d, metric, dim1, dim2, minute), value in buckets.items():
            self.rows["metric_buckets"].append(
                self.metric_row(d, metric, dim1, dim2, minute, value)
            )

    def metric_row(
        self, d: str, metric: str, dim1: str, dim2: str, minute: int, value: float
    ) -> dict[str, Any]:
        return {
            **self.base(d),
            "metric": metric,
            "dim1": dim1,
            "dim2": dim2,
            "bucket": minute // 1000,
            "kafka_partition": _partition(d),
            "value": value,
            "version": 1,
            "updated_at": minute + MIN,
        }

    def snapshots(self) -> list[int]:
        hours = [self.a - h * HOUR for h in range(48, 0, -1)]
        return [t - t % HOUR for t in hours] + [self.a - MIN]

    def grievance_gauges(self) -> None:
        by_district: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in self.rows["grievance_events"]:
            by_district[e["district_code"]].append(e)
        for d, events in by_district.items():
            events.sort(key=lambda e: e["occurred_at"])
            seen: set[tuple[str, str, str]] = set()
            for s in self.snapshots():
                latest: dict[str, dict[str, Any]] = {}
                due: dict[str, int] = {}
                for e in events:
                    if e["occurred_at"] > s:
                        break
                    latest[e["grievance_id"]] = e
                    if e["due_at"] is not None:
                        due[e["grievance_id"]] = e["due_at"]
                vals: dict[tuple[str, str, str], float] = defaultdict(float)
                oldest = 0
                for gid, e in latest.items():
                    if e["type"] not in OPEN_TYPES:
                        continue
                    vals[("grievance_open", e["category"], e["priority"])] += 1
                    if gid in due and due[gid] < s:
                        vals[("grievance_overdue", e["category"], e["priority"])] += 1
                    if e["priority"] == "urgent" and e["type"] == "received":
                        vals[("grievance_urgent_unassigned", e["category"], "")] += 1
                        oldest = max(oldest, (s - e["occurred_at"]) // 1000)
                vals[("grievance_urgent_unassigned_max_age_seconds", "", "")] = oldest
                last = max((e["occurred_at"] for e in latest.values()), default=s)
                vals[("last_event_age_seconds", "grievance", "")] = (s - last) // 1000
                # keys that dropped to zero get a 0 row, as the pipeline's snapshots do
                for key in seen | set(vals):
                    self.rows["metric_gauges"].append(
                        self.metric_row(d, *key, minute=s, value=vals.get(key, 0.0))
                    )
                seen |= set(vals)

    # --- projects ----------------------------------------------------------------------------

    def projects(self) -> None:
        rng = self.rng
        fy = fiscal_year_be(datetime.fromtimestamp(self.a / 1000, tz=UTC))
        for d in self.districts:
            for j in range(rng.randint(2, 6)):
                pid = f"P{d.code}-{j:03d}"
                program = rng.choice(PROGRAMS)
                alloc = float(rng.randint(2, 80) * 50_000)
                progress = rng.uniform(0, 40)
                planned = progress + rng.uniform(-5, 25)
                status = "on_track"
                t = self.a - rng.randint(20, 30) * DAY
                silent = rng.random() < 0.2  # stops reporting: becomes stale
                while t <= self.a - (16 * DAY if silent else 0):
                    progress = min(100.0, progress + rng.uniform(0, 6))
                    planned = min(100.0, max(0.0, planned + rng.uniform(2, 6)))
                    gap = planned - progress
                    status = (
                        "completed"
                        if progress >= 100
                        else "stalled"
                        if gap > 30
                        else "delayed"
                        if gap > 10
                        else "on_track"
                    )
                    disbursed = alloc * progress / 100 * rng.uniform(0.6, 1.0)
                    self.rows["project_events"].append(
                        {
                            **self.base(d.code),
                            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                            "occurred_at": t,
                            "subdistrict_code": "",
                            "source": "cdd-bpm",
                            "project_id": pid,
                            "program": program,
                            "fiscal_year": fy,
                            "status": status,
                            "progress_pct": round(progress, 1),
                            "planned_pct": round(planned, 1),
                            "budget_allocated_thb": alloc,
                            "budget_obligated_thb": round(min(alloc, disbursed * 1.3), 2),
                            "budget_disbursed_thb": round(disbursed, 2),
                            "target_households": rng.randint(10, 200),
                            "reached_households": None,
                            "sdg_goals": [1, 2],
                            "tpmap_dimensions": ["income"],
                            "kafka_partition": _partition(d.code),
                            "kafka_offset": len(self.rows["project_events"]),
                            "ingested_at": t + 500,
                        }
                    )
                    t += rng.randint(2, 5) * DAY

    def project_metrics(self) -> None:
        by_district: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in sorted(self.rows["project_events"], key=lambda e: e["occurred_at"]):
            by_district[e["district_code"]].append(e)
            minute = e["occurred_at"] - e["occurred_at"] % MIN
            self.rows["metric_buckets"].append(
                self.metric_row(
                    e["district_code"], "project_report", e["program"], e["status"], minute, 1
                )
            )
        for d, events in by_district.items():
            for s in self.snapshots()[-6:]:
                latest = {e["project_id"]: e for e in events if e["occurred_at"] <= s}
                vals: dict[tuple[str, str, str], float] = defaultdict(float)
                for e in latest.values():
                    p = e["program"]
                    vals[("project_count", p, e["status"])] += 1
                    fy = str(e["fiscal_year"])
                    plan = 0.3  # cumulative quarterly plan at the snapshot (temporary figure)
                    vals[("project_budget_allocated_thb", p, fy)] += e["budget_allocated_thb"]
                    vals[("project_budget_obligated_thb", p, fy)] += e["budget_obligated_thb"]
                    vals[("project_budget_disbursed_thb", p, fy)] += e["budget_disbursed_thb"]
                    vals[("project_budget_planned_disbursed_thb", p, fy)] += (
                        e["budget_allocated_thb"] * plan
                    )
                    if e["status"] in ("completed", "cancelled"):
                        continue
                    vals[("project_active", p, "")] += 1
                    vals[("project_progress_pct_sum", p, "")] += e["progress_pct"]
                    vals[("project_planned_pct_sum", p, "")] += e["planned_pct"]
                    if e["planned_pct"] - e["progress_pct"] > 10:
                        vals[("project_behind_plan", p, "")] += 1
                    if e["occurred_at"] < s - 14 * DAY:
                        vals[("project_stale", p, "")] += 1
                for key, value in vals.items():
                    self.rows["metric_gauges"].append(
                        self.metric_row(d, *key, minute=s, value=value)
                    )

    # --- quality, dead letters, alerts --------------------------------------------------------

    def quality(self) -> None:
        rng = self.rng
        counts: dict[tuple[str, str, str, str, str, int], int] = defaultdict(int)
        for stream, table in (("grievance", "grievance_events"), ("project", "project_events")):
            for e in self.rows[table]:
                minute = e["occurred_at"] - e["occurred_at"] % MIN
                counts[(e["district_code"], stream, e["source"], "accepted", "", minute)] += 1
                r = rng.random()
                if r < 0.03:
                    counts[(e["district_code"], stream, e["source"], "late", "", minute)] += 1
                elif r < 0.035:
                    counts[(e["district_code"], stream, e["source"], "duplicate", "", minute)] += 1
        reasons = ("unknown_district", "missing_field", "invalid_citizen_id", "unknown_enum")
        for i in range(300):
            at = self.a - rng.randint(0, 10 * DAY)
            minute = at - at % MIN
            reason = rng.choice(reasons)
            d = "" if reason == "unknown_district" else rng.choice(self.districts).code
            source = rng.choice(SOURCES)
            stream = rng.choice(("grievance", "project"))
            counts[(d, stream, source, "rejected", reason, minute)] += 1
            self.rows["dead_letters"].append(
                {
                    "received_at": at,
                    "topic": f"{stream}-events",
                    "kafka_partition": i % PARTITIONS,
                    "kafka_offset": 100_000 + i,
                    "reason": reason,
                    "field": "district_code" if reason == "unknown_district" else "type",
                    "detail": "not a known district" if d == "" else "value not allowed",
                    "source": source,
                    "district_code": d,
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "payload": json.dumps({"complainant": "[redacted]", "phone": "[masked]"}),
                }
            )
        for (d, stream, source, outcome, reason, minute), n in counts.items():
            prov, region = self.geo.get(d, ("", ""))
            self.rows["quality_buckets"].append(
                {
                    "district_code": d,
                    "province_code": prov,
                    "region": region,
                    "stream": stream,
                    "source": source,
                    "outcome": outcome,
                    "reason": reason,
                    "bucket": minute // 1000,
                    "kafka_partition": _partition(d),
                    "count": n,
                    "version": 1,
                }
            )

    def alerts(self) -> None:
        rng = self.rng
        for i, d in enumerate(rng.sample(self.districts, 25)):
            fired = self.a - rng.randint(1, 40) * HOUR
            states = ["pending", "firing"]
            if i % 3 == 0:
                states.append("resolved")
            elif i % 3 == 1:
                states.append("escalated")
            fp = hashlib.sha256(f"overdue{d.code}".encode()).hexdigest()[:16]
            for k, state in enumerate(states):
                self.rows["alerts_history"].append(
                    {
                        **self.base(d.code),
                        "at": fired + (k - 1) * 15 * MIN,
                        "alert_id": f"{fp}-{fired}",
                        "fingerprint": fp,
                        "rule_id": "overdue_backlog",
                        "state": state,
                        "severity": "critical" if i % 2 else "warning",
                        "dimension": "",
                        "value": float(10 + i),
                        "threshold": 10.0,
                        "title_th": f"เรื่องเกินกำหนดสะสม อ.{d.name_th}",
                        "title_en": f"Overdue backlog in {d.name_en}",
                        "message": "",
                        "channel": "",
                        "recipient": "",
                    }
                )


def fill(backend: ChdbBackend, anchor_ms: int) -> dict[str, int]:
    gen = Gen(anchor_ms)
    gen.grievances()
    gen.grievance_metrics()
    gen.grievance_gauges()
    gen.projects()
    gen.project_metrics()
    gen.quality()
    gen.alerts()
    out = {}
    for table, rows in gen.rows.items():
        columns = {name: [r[name] for r in rows] for name in rows[0]}
        out[table] = backend.insert(table, columns)
    return out


async def serve(store_url: str) -> None:
    """The sinks package's read-only ClickHouse-HTTP endpoint (what the worker serves) on the
    filled store, so panel SQL meets the same read-only checks as Grafana's."""
    service = QueryService(store_url)
    await service.start()
    runner = web.AppRunner(make_app(service))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    data_dir, anchor = Path(sys.argv[1]), int(sys.argv[2]) * 1000
    backend = ChdbBackend(data_dir, "warroom")
    try:
        migrate(backend)
        counts = fill(backend, anchor)
    finally:
        backend.close()
    print(f"FILLED {json.dumps(counts)}", flush=True)
    asyncio.run(serve(f"chdb://{data_dir.resolve()}?database=warroom"))


if __name__ == "__main__":
    main()
