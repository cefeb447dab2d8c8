-- Deployments @@crate@@ heard of on the bus; the event id makes a redelivery a no-op.
CREATE TABLE deployments_heard (
    event_id    uuid PRIMARY KEY,
    app         text NOT NULL,
    revision    text NOT NULL,
    status      text NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX deployments_heard_recent ON deployments_heard (occurred_at DESC);
