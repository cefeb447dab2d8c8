-- Webhook deliveries already handled (a replay carries the same id), and each deployment's timeline.
CREATE TABLE deliveries (
    provider     text NOT NULL,
    id           text NOT NULL,
    commit       text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, id)
);

CREATE TABLE deployments (
    id                 uuid PRIMARY KEY,
    namespace          text NOT NULL,
    app                text NOT NULL,
    commit             text NOT NULL,
    delivery           text,
    committed_at       timestamptz,
    -- Null for syncs the deployer saw but was not asked for (auto-sync, a sync from the Argo CD UI).
    webhook_at         timestamptz,
    -- A rollback is a deployment too; it is never rolled back itself.
    rollback_of        uuid REFERENCES deployments (id),
    sync_requested_at  timestamptz,
    synced_at          timestamptz,
    healthy_at         timestamptz,
    status             text NOT NULL CHECK (status IN ('requested', 'synced', 'healthy', 'degraded', 'rolled_back', 'failed')),
    reason             text
);
CREATE INDEX deployments_app ON deployments (namespace, app, webhook_at DESC);

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    subject         text NOT NULL,
    payload         bytea NOT NULL,
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
