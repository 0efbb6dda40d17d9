-- Latest state per grievance and per project, kept by ClickHouse itself: a materialized view
-- turns every event written to grievance_events / project_events into one row here, and the
-- AggregatingMergeTree folds the rows of one case into one. Panels that show each case "as of
-- the end of the range" read these tables with FINAL (one row per case, plain columns) instead
-- of grouping every event ever written (dashboards/queries.py).
-- Only SimpleAggregateFunction columns: max of a tuple that starts with (occurred_at,
-- kafka_offset) is the latest event's values (a tie goes to the later offset); min, max and a
-- repeated row are unchanged by a duplicate event, so replays and the back-fill below are
-- harmless. (argMax states read about eight times slower than these plain tuples.)
-- Keys start with region and province so a region or province filter prunes too; they
-- depend on district_code only.

CREATE TABLE IF NOT EXISTS {db}.grievance_latest
(
    region LowCardinality(String),
    province_code LowCardinality(String),
    district_code LowCardinality(String),
    grievance_id String,
    -- (occurred_at, kafka_offset, type, category, priority) of the latest event
    last SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), UInt64, String, String, String)),
    -- (occurred_at, kafka_offset, due_at) of the latest event with a due time; epoch 0 if none
    due SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), UInt64, DateTime64(3, 'UTC'))),
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    -- keyed pseudonym (never a name); '' sorts first, so any event's non-empty one wins
    pseudonym SimpleAggregateFunction(max, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (region, province_code, district_code, grievance_id);

CREATE TABLE IF NOT EXISTS {db}.project_latest
(
    region LowCardinality(String),
    province_code LowCardinality(String),
    district_code LowCardinality(String),
    project_id String,
    -- (occurred_at, kafka_offset, program, status, fiscal_year, progress_pct, planned_pct,
    --  budget_allocated_thb, budget_obligated_thb, budget_disbursed_thb, sdg_goals,
    --  tpmap_dimensions) of the latest report
    last SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), UInt64, String, String, UInt16,
        Float64, Float64, Float64, Float64, Float64, Array(UInt8), Array(String)))
)
ENGINE = AggregatingMergeTree
ORDER BY (region, province_code, district_code, project_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.grievance_latest_mv TO {db}.grievance_latest AS
SELECT region, province_code, district_code, grievance_id,
    (occurred_at, kafka_offset, CAST(type AS String), CAST(category AS String),
        CAST(priority AS String)) AS last,
    if(due_at IS NULL,
        (toDateTime64(0, 3, 'UTC'), toUInt64(0), toDateTime64(0, 3, 'UTC')),
        (occurred_at, kafka_offset, assumeNotNull(due_at))) AS due,
    occurred_at AS first_seen,
    complainant_pseudonym AS pseudonym
FROM {db}.grievance_events;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.project_latest_mv TO {db}.project_latest AS
SELECT region, province_code, district_code, project_id,
    (occurred_at, kafka_offset, CAST(program AS String), CAST(status AS String), fiscal_year,
        progress_pct,
        planned_pct, budget_allocated_thb, budget_obligated_thb, budget_disbursed_thb,
        sdg_goals, CAST(tpmap_dimensions AS Array(String))) AS last
FROM {db}.project_events;

-- Back-fill from the events already stored (after the views exist, so no event is missed; an
-- event both views and back-fill saw counts once: max and min ignore the repeat).
INSERT INTO {db}.grievance_latest
SELECT region, province_code, district_code, grievance_id,
    max((occurred_at, kafka_offset, CAST(type AS String), CAST(category AS String),
        CAST(priority AS String))),
    max(if(due_at IS NULL,
        (toDateTime64(0, 3, 'UTC'), toUInt64(0), toDateTime64(0, 3, 'UTC')),
        (occurred_at, kafka_offset, assumeNotNull(due_at)))),
    min(occurred_at),
    max(complainant_pseudonym)
FROM {db}.grievance_events
GROUP BY region, province_code, district_code, grievance_id;

INSERT INTO {db}.project_latest
SELECT region, province_code, district_code, project_id,
    max((occurred_at, kafka_offset, CAST(program AS String), CAST(status AS String), fiscal_year,
        progress_pct, planned_pct, budget_allocated_thb, budget_obligated_thb,
        budget_disbursed_thb, sdg_goals, CAST(tpmap_dimensions AS Array(String))))
FROM {db}.project_events
GROUP BY region, province_code, district_code, project_id;
