-- Parts of up to 128 MiB (uncompressed) are written in the compact format, one data file for
-- all columns, where the default (10 MiB) made every insert of a few thousand events a wide
-- part: two files per column (~100 for events), each a new inode, and ext4's inode allocator
-- took a fifth of the warehouse's CPU (perf). bench/part_format.py, medians of 3, warehouse
-- CPU per row with the merges: processed events in 5,000-row inserts 79.2 -> 65.6 µs, raw
-- events in 20,000-row inserts 20.6 -> 17.6 µs. Larger merged parts are still wide.
-- Parts written before keep their format until they are merged.
ALTER TABLE raw_events MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE events MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE transactions MODIFY SETTING min_bytes_for_wide_part = 134217728
