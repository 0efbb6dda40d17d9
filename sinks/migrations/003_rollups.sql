-- Hourly and daily rollups of metric_buckets and quality_buckets (issue 14): panels over long
-- ranges read these instead of one row per district, key and minute.
--
-- A rollup row is a pure function of the deduplicated minute data: sinks/rollups.py, called by
-- the writer at the flush before the worker commits the offsets of the minute rows it wrote
-- (each checkpoint; the store's owner also for every batch another worker sends it),
-- recomputes every touched hour from `metric_buckets FINAL`
-- (`quality_buckets FINAL`) with INSERT ... SELECT ... GROUP BY, then every touched day from the
-- hourly table FINAL. A minute row holds the FULL value of its key, so a materialized view
-- summing inserts would count a rewritten key twice; a recompute does not, and a crash or a
-- replay just recomputes (exactly-once holds). version = the store's clock in nanoseconds at
-- the recompute (now64(9)): a later recompute read everything committed before it started, so
-- the newest version is the right one (ReplacingMergeTree keeps it; read with FINAL).
--
-- Every metric_buckets metric is a count or a sum (received, course events, resolution seconds
-- sum/count, the cumulative histogram's per-le counts, SLA met/missed, project reports), so
-- each rolls up by sum; gauges (metric_gauges) are snapshots and are not rolled up.
--
-- Grain: metric rollups keep the province, not the district. At national volume (1,000 cases
-- a day) a district sees about one case a day: on one year, 3.33 M minute rows became 3.2 M
-- district-hours and 2.9 M district-days (nothing saved), but 2.65 M province-hours and 1.70 M
-- province-days, and the panels read one or two metrics (the key starts with metric, bucket).
-- Panels that select one district read the minute table (its key starts with district_code).
-- Quality rollups keep every column but the minute and the partition (1.09 M -> 45 k hourly).
-- Hours and days are UTC: time-series intervals ($__timeInterval) are counted from the epoch,
-- so a UTC day nests in a 1 d / 1 w / 30 d interval and a Bangkok day does not; a Bangkok day
-- is 24 whole UTC hours (17:00-17:00), read from the hourly table.
--
-- Back-fill: an existing store gets its rollups from the minute data it holds (below).

CREATE TABLE IF NOT EXISTS {db}.metric_buckets_hourly
(
    province_code LowCardinality(String),
    region LowCardinality(String),
    metric LowCardinality(String),
    dim1 LowCardinality(String),
    dim2 LowCardinality(String),
    bucket DateTime('UTC'),
    value Float64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (metric, bucket, province_code, dim1, dim2);

CREATE TABLE IF NOT EXISTS {db}.metric_buckets_daily
(
    province_code LowCardinality(String),
    region LowCardinality(String),
    metric LowCardinality(String),
    dim1 LowCardinality(String),
    dim2 LowCardinality(String),
    bucket DateTime('UTC'),
    value Float64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (metric, bucket, province_code, dim1, dim2);

CREATE TABLE IF NOT EXISTS {db}.quality_buckets_hourly
(
    district_code LowCardinality(String),
    province_code LowCardinality(String),
    region LowCardinality(String),
    stream LowCardinality(String),
    source LowCardinality(String),
    outcome LowCardinality(String),
    reason LowCardinality(String),
    bucket DateTime('UTC'),
    count UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (stream, outcome, reason, source, district_code, bucket);

CREATE TABLE IF NOT EXISTS {db}.quality_buckets_daily
(
    district_code LowCardinality(String),
    province_code LowCardinality(String),
    region LowCardinality(String),
    stream LowCardinality(String),
    source LowCardinality(String),
    outcome LowCardinality(String),
    reason LowCardinality(String),
    bucket DateTime('UTC'),
    count UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (stream, outcome, reason, source, district_code, bucket);

INSERT INTO {db}.metric_buckets_hourly
SELECT province_code, region, metric, dim1, dim2, toStartOfHour(bucket) AS hour,
    sum(value), toUInt64(toUnixTimestamp64Nano(now64(9)))
FROM {db}.metric_buckets FINAL
GROUP BY province_code, region, metric, dim1, dim2, hour;

INSERT INTO {db}.metric_buckets_daily
SELECT province_code, region, metric, dim1, dim2, toStartOfDay(bucket) AS day,
    sum(value), toUInt64(toUnixTimestamp64Nano(now64(9)))
FROM {db}.metric_buckets_hourly FINAL
GROUP BY province_code, region, metric, dim1, dim2, day;

INSERT INTO {db}.quality_buckets_hourly
SELECT district_code, province_code, region, stream, source, outcome, reason,
    toStartOfHour(bucket) AS hour, sum(count), toUInt64(toUnixTimestamp64Nano(now64(9)))
FROM {db}.quality_buckets FINAL
GROUP BY district_code, province_code, region, stream, source, outcome, reason, hour;

INSERT INTO {db}.quality_buckets_daily
SELECT district_code, province_code, region, stream, source, outcome, reason,
    toStartOfDay(bucket) AS day, sum(count), toUInt64(toUnixTimestamp64Nano(now64(9)))
FROM {db}.quality_buckets_hourly FINAL
GROUP BY district_code, province_code, region, stream, source, outcome, reason, day;

-- One part per month, as background merges would leave them: a FINAL over merged months
-- skips the merge step, so long ranges are fast from the first query.
OPTIMIZE TABLE {db}.metric_buckets_hourly FINAL;

OPTIMIZE TABLE {db}.metric_buckets_daily FINAL;

OPTIMIZE TABLE {db}.quality_buckets_hourly FINAL;

OPTIMIZE TABLE {db}.quality_buckets_daily FINAL;
