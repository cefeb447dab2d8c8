-- edge-registry: join tokens and the edge nodes enrolled with them.

CREATE TABLE join_tokens (
    id              uuid PRIMARY KEY,
    -- Only the SHA-256 of a token is kept; the token is shown once, at creation.
    sha256          text NOT NULL UNIQUE,
    description     text,
    labels          jsonb NOT NULL DEFAULT '{}',
    taints          jsonb NOT NULL DEFAULT '[]',
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    used_by         uuid,
    revoked_at      timestamptz
);

CREATE TABLE edge_nodes (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL UNIQUE,
    tailnet_ip          text NOT NULL,
    dns_name            text NOT NULL,
    facts               jsonb NOT NULL,
    labels              jsonb NOT NULL DEFAULT '{}',
    taints              jsonb NOT NULL DEFAULT '[]',
    state               text NOT NULL DEFAULT 'online' CHECK (state IN ('online', 'stale', 'offline')),
    token_id            uuid NOT NULL REFERENCES join_tokens (id),
    enrolled_at         timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at   timestamptz,
    last_heartbeat      jsonb,
    state_changed_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    subject         text NOT NULL,
    payload         bytea NOT NULL,
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
