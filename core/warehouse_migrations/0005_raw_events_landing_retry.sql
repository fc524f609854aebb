-- 1 on rows the landing worker landed again: rows of an insert that failed, or of a worker
-- killed mid-insert, are landed once more, and the first insert may have gone through.
-- Processing drops such a row when its first copy landed in a window it processed before.
ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS landing_retry UInt8 DEFAULT 0;
