-- Copies of one event (project, item type, event id) now collapse to the FIRST landed, where
-- ReplacingMergeTree(landed_at) kept the last. Processing drops a copy landed again
-- (landing_retry) when it finds the first copy in a window it processed before; a merge that
-- kept only the later copy hid the first, and the event was counted a second time.
-- ReplacingMergeTree keeps the highest version, so the version is landed_at counted down.
--
-- A table's engine cannot be altered: the parts move to a new table by hard link (no data is
-- rewritten) and the new table takes the name. A landing worker may insert meanwhile (when
-- `pulsetrace migrate` runs beside a running stack): a part it adds to the old table between
-- the move and the rename is moved by the second ATTACH, after the rename. That one links
-- every part again: the copies are the same rows (same landed_at), which processing reads
-- once and merges collapse. Every statement can run again after an interruption.
DROP TABLE IF EXISTS raw_events_before_0008;
ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS first_landed UInt64
    MATERIALIZED 18446744073709551615 - toUnixTimestamp64Micro(landed_at);
DROP TABLE IF EXISTS raw_events_next;
CREATE TABLE raw_events_next
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
    payload String CODEC(ZSTD(1)),
    landing_retry UInt8 DEFAULT 0,
    first_landed UInt64 MATERIALIZED 18446744073709551615 - toUnixTimestamp64Micro(landed_at),
    INDEX landed_at_idx landed_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(first_landed)
PARTITION BY toDate(received_at)
ORDER BY (project_id, item_type, event_id)
TTL toDateTime(received_at) + INTERVAL 7 DAY;
ALTER TABLE raw_events_next ATTACH PARTITION ALL FROM raw_events;
RENAME TABLE raw_events TO raw_events_before_0008, raw_events_next TO raw_events;
ALTER TABLE raw_events ATTACH PARTITION ALL FROM raw_events_before_0008;
DROP TABLE raw_events_before_0008;
