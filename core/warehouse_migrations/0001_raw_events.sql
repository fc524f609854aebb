-- Landing table: every accepted event exactly as the SDK sent it (plus what ingest learned),
-- kept only until the pipeline has processed it and a safety margin after.
-- ReplacingMergeTree on (project_id, item_type, event_id): an SDK retry of an event collapses.
-- landed_at is the pipeline's cursor; the minmax index keeps "rows since cursor" cheap.
CREATE TABLE IF NOT EXISTS raw_events
(
    organization_id UInt64,
    project_id UInt64,
    event_id UUID,
    item_type LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    landed_at DateTime64(6, 'UTC') DEFAULT now64(6),
    client_ip String,
    user_agent String,
    ua_browser LowCardinality(String),
    ua_browser_version LowCardinality(String),
    ua_os LowCardinality(String),
    ua_os_version LowCardinality(String),
    ua_device LowCardinality(String),
    sdk_name LowCardinality(String),
    sdk_version LowCardinality(String),
    payload String CODEC(ZSTD(3)),
    INDEX landed_at_idx landed_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(landed_at)
PARTITION BY toDate(received_at)
ORDER BY (project_id, item_type, event_id)
TTL toDateTime(received_at) + INTERVAL 7 DAY;
