-- The backup catalog: a row is 'running' before the first byte leaves, 'succeeded' only after S3 completed the
-- object, with both digests. Only succeeded rows are backups; a running row after a restart is an interrupted one.
CREATE TABLE backups (
    id                  uuid PRIMARY KEY,
    policy              text NOT NULL,
    source              text NOT NULL,
    bucket              text NOT NULL,
    object_key          text NOT NULL,
    key_id              text NOT NULL,
    status              text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    reason              text,
    plaintext_sha256    text,
    plaintext_bytes     bigint,
    stored_sha256       text,
    stored_bytes        bigint,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz
);
CREATE INDEX backups_policy ON backups (policy, started_at DESC);
