-- The current value of every gauge key, one row per key: the worker writes each gauge snapshot
-- (every WARROOM_GAUGE_INTERVAL seconds) here, and only the first snapshot of each
-- WARROOM_GAUGE_HISTORY_MINUTES slot to metric_gauges, the history that ranges ending in the
-- past read. Before this, every snapshot of every stream minute stayed in metric_gauges: about
-- 6,000 rows a minute live with four weeks behind it (up to ~48,000 after a year), 9 to 70
-- million rows a day, and every gauge panel scanned seven days of them.
-- version is the snapshot's wall time (ns), so the latest snapshot wins; a key that drops gets
-- a 0 row, and a restored worker zeroes every key of its partition that it no longer has
-- (streams/pipeline.py), so a non-zero row here is its key's current value. No partitions:
-- rows of one key must meet in merges. No TTL: one row per key ever seen, no personal data.

-- the history's columns; its engine clause is replaced whole (no monthly partitions, no TTL)
CREATE TABLE IF NOT EXISTS {db}.metric_gauges_latest AS {db}.metric_gauges
ENGINE = ReplacingMergeTree(version)
PARTITION BY tuple()
ORDER BY (district_code, kafka_partition, metric, dim1, dim2);

-- every key's latest row so far (the history's latest snapshot per district wins; a key
-- missing from it is 0 there, as readers of the history took it)
INSERT INTO {db}.metric_gauges_latest
    (district_code, metric, dim1, dim2, bucket, kafka_partition, value, version)
SELECT g.district_code, g.metric, g.dim1, g.dim2, g.last_bucket, g.kafka_partition,
    if(g.last_bucket = l.snapshot, g.last_value, 0), g.last_version
FROM (
    SELECT district_code, metric, dim1, dim2, kafka_partition,
        argMax(value, (bucket, version)) AS last_value, max(bucket) AS last_bucket,
        max(version) AS last_version,
        if(startsWith(metric, 'project') OR (metric = 'last_event_age_seconds'
            AND dim1 = 'project'), 'project', 'grievance') AS family
    FROM {db}.metric_gauges FINAL
    GROUP BY district_code, metric, dim1, dim2, kafka_partition
) AS g
INNER JOIN (
    SELECT district_code, kafka_partition,
        if(startsWith(metric, 'project') OR (metric = 'last_event_age_seconds'
            AND dim1 = 'project'), 'project', 'grievance') AS family,
        max(bucket) AS snapshot
    FROM {db}.metric_gauges
    GROUP BY district_code, kafka_partition, family
) AS l
ON g.district_code = l.district_code AND g.kafka_partition = l.kafka_partition
    AND g.family = l.family;
