-- Row-level security where the database is Supabase's (it has the `auth` schema, with
-- `auth.uid()`, the signed-in user's id from the request's JWT): client libraries using the
-- anon or authenticated key then read only a user's own generations, images and events, and
-- public images; the queue's and the accounts' tables are closed to them (RLS without a
-- policy lets nobody in). Atelier itself connects as the tables' owner (the role that ran
-- this migration), and an owner bypasses RLS unless it is forced, which it is not here.
-- A database without `auth` is left as it is: nothing there reads through RLS.
DO $$
BEGIN
    IF to_regnamespace('auth') IS NULL THEN
        RETURN;
    END IF;
    ALTER TABLE generations ENABLE ROW LEVEL SECURITY;
    ALTER TABLE images ENABLE ROW LEVEL SECURITY;
    ALTER TABLE events ENABLE ROW LEVEL SECURITY;
    ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
    ALTER TABLE meta ENABLE ROW LEVEL SECURITY;
    ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
    ALTER TABLE account_holds ENABLE ROW LEVEL SECURITY;
    CREATE POLICY generations_of_their_owner ON generations FOR SELECT
        USING (owner = auth.uid());
    CREATE POLICY images_of_their_owner_or_public ON images FOR SELECT
        USING (public OR owner = auth.uid());
    CREATE POLICY events_of_their_generations_owner ON events FOR SELECT
        USING (EXISTS (SELECT 1 FROM generations g
                       WHERE g.id = events.generation_id AND g.owner = auth.uid()));
END
$$;
