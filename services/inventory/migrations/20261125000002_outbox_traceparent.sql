-- The outbox keeps the trace context of the request that made each change (bus::outbox).
ALTER TABLE outbox ADD COLUMN traceparent text;
