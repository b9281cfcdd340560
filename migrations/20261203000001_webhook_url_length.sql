-- A webhook's URL is stored as the URL parser writes it, which can be longer than what was sent
-- (a `/` added after a bare host): a URL of the accepted 2048 characters could break the old
-- bound of 2048 and answer 500. 4096 leaves room for every normalisation of an accepted URL.
ALTER TABLE webhooks DROP CONSTRAINT webhooks_url_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_url_check CHECK (char_length(url) BETWEEN 1 AND 4096);
