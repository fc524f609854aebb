-- Performance data: one row per transaction (page load, navigation, API request), with the
-- Web Vitals in `measurements` and its spans as parallel arrays for API-latency views.
CREATE TABLE IF NOT EXISTS transactions
(
    organization_id UInt64,
    project_id UInt64,
    event_id UUID,
    trace_id String,
    span_id String,
    transaction_name String,
    op LowCardinality(String),
    status LowCardinality(String),
    start_timestamp DateTime64(6, 'UTC'),
    timestamp DateTime64(6, 'UTC'),
    duration_ms Float64,
    received_at DateTime64(3, 'UTC'),
    processed_at DateTime64(3, 'UTC') DEFAULT now64(3),
    platform LowCardinality(String),
    release LowCardinality(String),
    environment LowCardinality(String),
    user_key String,
    browser_name LowCardinality(String),
    os_name LowCardinality(String),
    device_family LowCardinality(String),
    http_method LowCardinality(String),
    http_status_code UInt16,
    url String,
    measurements Nested(name LowCardinality(String), value Float64),
    tags Nested(key LowCardinality(String), value String),
    spans Nested
    (
        op LowCardinality(String),
        description String,
        status LowCardinality(String),
        start_offset_ms Float64,
        duration_ms Float64
    )
)
ENGINE = ReplacingMergeTree(processed_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toStartOfDay(timestamp), transaction_name, event_id);
