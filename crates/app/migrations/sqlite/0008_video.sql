-- Video as a first-class asset: an image row is a still picture or a clip. A clip keeps its
-- length, frame count and codec, read from its container when it was verified; its thumbnail
-- is its first frame. Rows written before this migration are pictures.
ALTER TABLE images ADD COLUMN kind TEXT NOT NULL DEFAULT 'image' CHECK (kind IN ('image', 'video'));
ALTER TABLE images ADD COLUMN duration_ms INTEGER CHECK (duration_ms IS NULL OR duration_ms >= 0);
ALTER TABLE images ADD COLUMN frames INTEGER CHECK (frames IS NULL OR frames >= 1);
ALTER TABLE images ADD COLUMN codec TEXT;

CREATE INDEX images_kind ON images (kind, id) WHERE kind = 'video';
