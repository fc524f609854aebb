-- How far the SDK's clock was behind the receipt when it sent the envelope (negative: ahead),
-- from the envelope's `sent_at`; 0 under 55 minutes. Processing moves the event's times by it,
-- as Sentry's Relay does (pipelines.processed.corrected_times).
ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS clock_drift_ms Int64 DEFAULT 0;
