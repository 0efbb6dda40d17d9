-- warroom schema v1. Every table is a ReplacingMergeTree: delivery is at-least-once, so a
-- replayed row must collapse into the row it repeats. All times are UTC.
-- Statements are separated by ";" at the end of a line; the runner prefixes table names with
-- the target database ({db}).
-- Columns derived from district_code, and the write time, have DEFAULTs: the worker does not
-- send them, ClickHouse computes them (cheaper than building them per row in Python).

CREATE TABLE IF NOT EXISTS {db}.grievance_events
(
    event_id UUID,
    occurred_at DateTime64(3, 'UTC'),
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
    subdistrict_code String,
    source LowCardinality(String),
    grievance_id String,
    type LowCardinality(String),
    category LowCardinality(String),
    channel LowCardinality(String),
    priority LowCardinality(String),
    due_at Nullable(DateTime64(3, 'UTC')),
    agency String,
    complainant_kind LowCardinality(String),
    complainant_pseudonym String,
    kafka_partition UInt16,
    kafka_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (district_code, grievance_id, event_id);

CREATE TABLE IF NOT EXISTS {db}.project_events
(
    event_id UUID,
    occurred_at DateTime64(3, 'UTC'),
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
    subdistrict_code String,
    source LowCardinality(String),
    project_id String,
    program LowCardinality(String),
    fiscal_year UInt16,
    status LowCardinality(String),
    progress_pct Float64,
    planned_pct Float64,
    budget_allocated_thb Float64,
    budget_obligated_thb Float64,
    budget_disbursed_thb Float64,
    target_households Nullable(UInt32),
    reached_households Nullable(UInt32),
    sdg_goals Array(UInt8),
    tpmap_dimensions Array(LowCardinality(String)),
    kafka_partition UInt16,
    kafka_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (district_code, project_id, event_id);

-- Each row holds the full value of its key (not a delta): read with FINAL and sum(value)
-- across kafka_partition.
CREATE TABLE IF NOT EXISTS {db}.metric_buckets
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
PARTITION BY toYYYYMM(bucket)
ORDER BY (district_code, metric, dim1, dim2, bucket, kafka_partition);

-- Snapshots per minute of stream time; current value = argMax(value, bucket) per key, summed
-- over kafka_partition.
CREATE TABLE IF NOT EXISTS {db}.metric_gauges
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
PARTITION BY toYYYYMM(bucket)
ORDER BY (district_code, metric, dim1, dim2, bucket, kafka_partition);

CREATE TABLE IF NOT EXISTS {db}.quality_buckets
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
    stream LowCardinality(String),
    source LowCardinality(String),
    outcome LowCardinality(String),
    reason LowCardinality(String),
    bucket DateTime('UTC'),
    kafka_partition UInt16,
    count UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (stream, outcome, reason, source, district_code, bucket, kafka_partition);

CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    received_at DateTime64(3, 'UTC'),
    topic LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset UInt64,
    reason LowCardinality(String),
    field String,
    detail String,
    source LowCardinality(String),
    district_code LowCardinality(String),
    event_id String,
    payload String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (topic, kafka_partition, kafka_offset);

CREATE TABLE IF NOT EXISTS {db}.alerts_history
(
    at DateTime64(3, 'UTC'),
    alert_id String,
    fingerprint String,
    rule_id LowCardinality(String),
    state LowCardinality(String),
    severity LowCardinality(String),
    district_code LowCardinality(String),
    province_code LowCardinality(String),
    region LowCardinality(String),
    dimension String,
    value Float64,
    threshold Float64,
    title_th String,
    title_en String,
    message String,
    channel LowCardinality(String),
    recipient String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (district_code, rule_id, fingerprint, at, state, channel);

CREATE TABLE IF NOT EXISTS {db}.ref_provinces
(
    province_code String,
    name_th String,
    name_en String,
    region LowCardinality(String),
    region_th String,
    region_en String
)
ENGINE = ReplacingMergeTree
ORDER BY province_code;

CREATE TABLE IF NOT EXISTS {db}.ref_districts
(
    district_code String,
    name_th String,
    name_en String,
    province_code String,
    province_th String,
    province_en String,
    region LowCardinality(String),
    region_th String,
    region_en String
)
ENGINE = ReplacingMergeTree
ORDER BY district_code;
