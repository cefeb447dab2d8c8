-- Inventory: the system of record of the lab.

CREATE TABLE nodes (
    id              uuid PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('control', 'worker', 'edge', 'vm')),
    addresses       jsonb NOT NULL DEFAULT '[]',
    labels          jsonb NOT NULL DEFAULT '{}',
    capacity        jsonb NOT NULL DEFAULT '{}',
    gpu             jsonb,
    health          text NOT NULL DEFAULT 'unknown'
                    CHECK (health IN ('unknown', 'healthy', 'degraded', 'offline')),
    health_reason   text,
    last_seen       timestamptz,
    last_heartbeat  jsonb,
    -- 'api' for nodes added by people, or the service that reported the node.
    source          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE services (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    namespace       text NOT NULL,
    endpoints       jsonb NOT NULL DEFAULT '[]',
    owner           text,
    description     text,
    health          text NOT NULL DEFAULT 'unknown'
                    CHECK (health IN ('unknown', 'healthy', 'degraded', 'offline')),
    health_reason   text,
    revision        text,
    source          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace, name)
);

-- Every health transition of a node or service, in order.
CREATE TABLE health_history (
    id              bigserial PRIMARY KEY,
    entity          text NOT NULL CHECK (entity IN ('node', 'service')),
    entity_id       uuid NOT NULL,
    health          text NOT NULL,
    reason          text,
    event_id        uuid,
    observed_at     timestamptz NOT NULL
);
CREATE INDEX health_history_entity ON health_history (entity, entity_id, observed_at DESC);

-- What happened in the lab, one row per applied event: deploys, backups, drills, rotations.
CREATE TABLE activity (
    id              bigserial PRIMARY KEY,
    event_id        uuid NOT NULL,
    kind            text NOT NULL,
    subject_key     text NOT NULL,
    status          text NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}',
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activity_latest ON activity (kind, subject_key, occurred_at DESC);

-- Events already applied: a redelivered event finds its id here and changes nothing.
CREATE TABLE processed_events (
    event_id        uuid PRIMARY KEY,
    subject         text NOT NULL,
    processed_at    timestamptz NOT NULL DEFAULT now()
);

-- inventory.v1.changed events written in the same transaction as the change, published by a relay.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    subject         text NOT NULL,
    payload         bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
