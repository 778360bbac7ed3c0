-- 0009_events_by_at: an index on the events' time, so that --event-retention-days deletes the
-- oldest events (registry_events_prune) without reading the whole audit log each time.
CREATE INDEX events_by_at ON events (at, id);
