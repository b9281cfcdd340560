-- Fair scheduling between owners: a worker's delivery from Redis only wakes it up; what it claims
-- is the due queued job of the owner with the fewest jobs processing, then the least recent claim,
-- then that owner's oldest job (db::jobs::claim_next). This table remembers each owner's last
-- claim. Videos without an owner share one bucket: the row whose owner_id is NULL (NULLS NOT
-- DISTINCT keeps it unique, so ON CONFLICT (owner_id) updates it like any other).
CREATE TABLE owner_claims (
    owner_id        uuid UNIQUE NULLS NOT DISTINCT REFERENCES owners (id) ON DELETE CASCADE,
    last_claimed_at timestamptz NOT NULL
);
