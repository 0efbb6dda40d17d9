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

CREATE TABLE IF NOT EXISTS {db}.metric_gauges_latest
(
    district_code LowCardinality(String),
    province_code LowCardinality(String) DEFAULT substring(district_code, 1, 2),
    region LowCardinality(String) DEFAULT transform(substring(district_code, 1, 2),
            ['10', '11', '12', '13', '14', '15', '16', '17', '18', '19', '20', '21', '22', '23', '24',
             '25', '26', '27', '30', '31', '32', '33', '34', '35', '36', '37', '38', '39', '40',
             '41', '42', '43', '44', '45', '46', '47', '48', '49', '50', '51', '52', '53', '54',
             '55', '56', '57', '58', '60', '61', '62', '63', '64', '65', '66', '67', '70', '71',
             '72', '73', '74', '75', '76', '77', '80', '81', '82', '83', '84', '85', '86', '90',
             '91', '92', '93', '94', '95', '96'],
            ['central', 'central', 'central', 'central', 'central', 'central', 'central', 'central',
             'central', 'central', 'east', 'east', 'east', 'east', 'east', 'east', 'central',
             'east', 'northeast', 'northeast', 'northeast', 'northeast', 'northeast',
             'northeast', 'northeast', 'northeast', 'northeast', 'northeast', 'northeast',
             'northeast', 'northeast', 'northeast', 'northeast', 'northeast', 'northeast',
             'northeast', 'northeast', 'northeast', 'north', 'north', 'north', 'north', 'north',
             'north', 'north', 'north', 'north', 'central', 'central', 'central', 'west',
             'central', 'central', 'central', 'central', 'west', 'west', 'central', 'central',
             'central', 'central', 'west', 'west', 'south', 'south', 'south', 'south', 'south',
             'south', 'south', 'south', 'south', 'south', 'south', 'south', 'south', 'south'],
            ''),
    metric LowCardinality(String),
    dim1 LowCardinality(String),
    dim2 LowCardinality(String),
    bucket DateTime('UTC'),
    kafka_partition UInt16,
    value Float64,
    version UInt64,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
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
