-- Runs, verification, readers, drills and the outbox of backup.v1 events.

-- Which try of a run this row is (retries are rows of their own, each failure visible), and when the stored
-- object last passed a full verify (download, decrypt, both digests).
ALTER TABLE backups ADD COLUMN attempt integer NOT NULL DEFAULT 1;
ALTER TABLE backups ADD COLUMN verified_at timestamptz;

-- A restore or drill reading a backup. Retention deletes no backup with a reader: the foreign key refuses it
-- even when a reader arrives between retention's plan and its delete.
CREATE TABLE backup_reads (
    id          uuid PRIMARY KEY,
    backup_id   uuid NOT NULL REFERENCES backups (id) ON DELETE RESTRICT,
    purpose     text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE drills (
    id           uuid PRIMARY KEY,
    policy       text NOT NULL,
    backup_id    uuid REFERENCES backups (id) ON DELETE SET NULL,
    status       text NOT NULL CHECK (status IN ('running', 'passed', 'failed')),
    reason       text,
    checks       jsonb NOT NULL DEFAULT '[]',
    duration_ms  bigint,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX drills_policy ON drills (policy, started_at DESC);

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    subject         text NOT NULL,
    payload         bytea NOT NULL,
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
