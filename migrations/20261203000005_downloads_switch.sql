-- Whether the worker makes the video's downloads: the upload's `downloads=` (`?downloads=false`,
-- the URL ingest's JSON `downloads`, or tus `Upload-Metadata: downloads`), on by default.
ALTER TABLE videos ADD COLUMN downloads boolean NOT NULL DEFAULT true;
