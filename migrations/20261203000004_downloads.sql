-- The downloads the ready attempt wrote next to its playlists: download.mp4 (the highest rung with
-- the default audio, remuxed) and download.m4a (the default audio). Written with the renditions
-- when the video becomes ready; the API offers them (playback.downloads) only then.
ALTER TABLE videos
    ADD COLUMN download_video boolean NOT NULL DEFAULT false,
    ADD COLUMN download_audio boolean NOT NULL DEFAULT false;
