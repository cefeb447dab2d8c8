-- The audit trail and the state of every rotation. Secret values are never stored here: only versions, the
-- current database user's name, who asked, what happened and why.
CREATE TABLE rotations (
    id                uuid PRIMARY KEY,
    policy            text NOT NULL,
    path              text NOT NULL,
    actor             text NOT NULL,
    -- started: nothing visible yet; written: the new version is in Vault; published: consumers were told;
    -- then done, rolled_back (the previous value is current again) or failed (nothing changed).
    phase             text NOT NULL CHECK (phase IN ('started', 'written', 'published', 'done', 'rolled_back', 'failed')),
    from_version      bigint,
    to_version        bigint,
    restored_version  bigint,
    db_user           text,
    unacknowledged    text[] NOT NULL DEFAULT '{}',
    reason            text,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX rotations_path ON rotations (path, started_at DESC);
-- One rotation of a policy at a time.
CREATE UNIQUE INDEX rotations_in_flight ON rotations (policy) WHERE phase IN ('started', 'written', 'published');

CREATE TABLE acks (
    rotation_id  uuid NOT NULL REFERENCES rotations (id) ON DELETE CASCADE,
    consumer     text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rotation_id, consumer)
);

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    subject         text NOT NULL,
    payload         bytea NOT NULL,
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
