-- Processed, PII-scrubbed error and message events, one row per event.
-- Sorted for the product's queries: a project's events in a time range; the bloom index finds
-- an issue's events. The key holds no issue id, so a reprocessed event replaces itself even
-- if it was grouped differently the second time.
CREATE TABLE IF NOT EXISTS events
(
    organization_id UInt64,
    project_id UInt64,
    event_id UUID,
    issue_id UInt64,
    fingerprint_hash FixedString(32),
    timestamp DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    processed_at DateTime64(3, 'UTC') DEFAULT now64(3),
    level LowCardinality(String),
    platform LowCardinality(String),
    title String,
    culprit String,
    message String,
    exception_type String,
    exception_value String,
    handled Nullable(Bool),
    release LowCardinality(String),
    environment LowCardinality(String),
    dist LowCardinality(String),
    transaction_name String,
    user_id String,
    user_email String,
    user_ip String,
    user_key String,
    browser_name LowCardinality(String),
    browser_version String,
    os_name LowCardinality(String),
    os_version String,
    device_family LowCardinality(String),
    sdk_name LowCardinality(String),
    sdk_version LowCardinality(String),
    url String,
    tags Nested(key LowCardinality(String), value String),
    fingerprint Array(String),
    stacktrace String CODEC(ZSTD(3)),
    breadcrumbs String CODEC(ZSTD(3)),
    contexts String CODEC(ZSTD(3)),
    payload String CODEC(ZSTD(3)),
    INDEX issue_idx issue_id TYPE bloom_filter GRANULARITY 4,
    INDEX release_idx release TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(processed_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toStartOfDay(timestamp), event_id);
