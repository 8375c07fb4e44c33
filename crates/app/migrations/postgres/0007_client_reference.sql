-- A caller's own reference for a generation (the midjourney-proxy's `state`, the API's
-- `client_reference`): a short string kept as given and shown back, never read by Atelier.
-- The domain checks it (at most 255 characters, no control character) before it is written;
-- the bound is repeated here so no writer can store a longer one.
ALTER TABLE generations ADD COLUMN client_reference text
    CHECK (client_reference IS NULL OR char_length(client_reference) <= 255);
