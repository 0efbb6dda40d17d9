-- The open grievance cases, as snapshots ("generations") the store's owner rebuilds from
-- grievance_latest every WARROOM_OPEN_CASES_EVERY seconds (sinks/open_cases.py). The overdue
-- list reads the newest generation (a few tens of thousands of open cases, no FINAL) instead of
-- merging every case ever received (grievance_latest FINAL: ~400,000 rows after a year, ~300 ms
-- p95 on a 2-core machine). A generation's time is its watermark: every event ingested up to it
-- is in the snapshot, and the cases with an event ingested after it are read from
-- grievance_latest by their keys (dashboards/queries.py, open_grievances), so a stale or
-- missing generation makes the list slower, never wrong.
-- One partition per generation: the rebuild drops all but the newest few whole.
-- No TTL of its own: a generation holds only cases open when it was built, and goes within
-- minutes; a case whose events expire (grievance_latest's retention) leaves the next one.

CREATE TABLE IF NOT EXISTS {db}.grievance_open
(
    generation DateTime64(3, 'UTC'),
    region LowCardinality(String),
    province_code LowCardinality(String),
    district_code LowCardinality(String),
    grievance_id String,
    last_at DateTime64(3, 'UTC'),
    last_type LowCardinality(String),
    category_code LowCardinality(String),
    priority_code LowCardinality(String),
    due Nullable(DateTime64(3, 'UTC')),
    first_seen DateTime64(3, 'UTC'),
    pseudonym String
)
ENGINE = MergeTree
PARTITION BY toUnixTimestamp64Milli(generation)
ORDER BY (region, province_code, district_code, grievance_id);

-- one row per complete generation, written after its rows: readers take the newest here
CREATE TABLE IF NOT EXISTS {db}.grievance_open_generations
(
    generation DateTime64(3, 'UTC'),
    cases UInt64,
    built_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY generation
TTL toDateTime(built_at) + INTERVAL 7 DAY;
