-- User feedback from the crash-report dialog or the feedback widget, optionally tied to an event.
CREATE TABLE IF NOT EXISTS feedback
(
    organization_id UInt64,
    project_id UInt64,
    feedback_id UUID,
    event_id Nullable(UUID),
    issue_id UInt64,
    timestamp DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    processed_at DateTime64(3, 'UTC') DEFAULT now64(3),
    name String,
    contact_email String,
    message String,
    url String,
    release LowCardinality(String),
    environment LowCardinality(String)
)
ENGINE = ReplacingMergeTree(processed_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toStartOfDay(timestamp), feedback_id);
