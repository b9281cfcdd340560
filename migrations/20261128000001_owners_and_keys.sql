-- Who may do what. An owner holds videos, uploads (and later webhooks); an owner has one or more
-- API keys. A key is stored only as the SHA-256 of its secret (keys are 256-bit random, so a
-- fast hash is enough: there is nothing to brute-force), with a short visible prefix so people
-- can tell their keys apart in `prostream keys list`.
CREATE TABLE owners (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (char_length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    owner_id      uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    prefix        text NOT NULL UNIQUE,
    secret_sha256 bytea NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    admin         boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- Videos and uploads made before keys existed (or in AUTH_MODE=open without a key) have no
-- owner: only admin keys see them.
ALTER TABLE videos
    ADD COLUMN owner_id uuid REFERENCES owners (id) ON DELETE SET NULL,
    ADD COLUMN visibility text NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private'));
CREATE INDEX videos_owner_id ON videos (owner_id, id DESC);

ALTER TABLE uploads ADD COLUMN owner_id uuid REFERENCES owners (id) ON DELETE CASCADE;
