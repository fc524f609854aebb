-- Events processing set aside: a stage raised on the event alone (a bug meeting a shape
-- nobody foresaw), so it was left out of its window instead of blocking every project's
-- events behind it. Its raw row stays in raw_events; reprocessing a range that holds it
-- processes it again and, when it now succeeds, marks its record retried.
-- ReplacingMergeTree on (project_id, item_type, event_id), the newest record (recorded_at)
-- kept: a window run again records an event once. Read with FINAL.
-- Kept as long as raw_events keeps the raw row (error messages can quote the event's data).
CREATE TABLE IF NOT EXISTS dead_letter_events
(
    organization_id UInt64,
    project_id UInt64,
    event_id UUID,
    item_type LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    landed_at DateTime64(6, 'UTC'),
    failed_at DateTime64(3, 'UTC'),
    stage LowCardinality(String),
    error_type String,
    error_message String,
    retried UInt8 DEFAULT 0,  -- 1: processed by a later run, no longer failing
    recorded_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toDate(received_at)
ORDER BY (project_id, item_type, event_id)
TTL toDateTime(received_at) + INTERVAL 7 DAY;
