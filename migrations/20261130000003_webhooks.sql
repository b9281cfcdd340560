-- Webhooks (Standard Webhooks): an owner's endpoints, the outbox of events written in the same
-- transaction as the state change they announce, one delivery per event and subscribed endpoint,
-- and every attempt of each delivery.

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    owner_id    uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    url         text NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2048),
    events      text[] NOT NULL CHECK (
                    cardinality(events) > 0
                    AND events <@ ARRAY['video.ready', 'video.failed', 'video.canceled',
                                        'video.playable']::text[]),
    -- `whsec_` + base64 of 32 random bytes. Kept as is: signing needs it (it is shown only once).
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner_id ON webhooks (owner_id, id);

-- The outbox. No foreign key to videos: an event outlives a video deleted right after it.
CREATE TABLE webhook_events (
    id          uuid PRIMARY KEY,
    owner_id    uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    video_id    uuid NOT NULL,
    type        text NOT NULL,
    -- The body sent, as it is signed: {"type", "timestamp", "data"}.
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    event_id         uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'delivered', 'failed')),
    -- Attempts started; the fencing token of the attempt that holds the lease.
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- Set while an API instance sends an attempt; another instance takes the delivery only once it
    -- has run out (the sender died), so no attempt is sent twice.
    lease_expires_at timestamptz,
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at DESC);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  integer NOT NULL,
    -- The HTTP status the endpoint answered, or NULL with `error` (timeout, refused, forbidden…).
    status       integer,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);
