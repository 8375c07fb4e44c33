-- The life cycle's rules are the domain's (`Stage::apply`): the catalogue reads a generation's
-- stage in a write transaction and writes the event and the new stage itself, so the trigger
-- that applied an event to its generation goes.
DROP TRIGGER events_apply_to_generation;

-- What a process last saw of a provider account's health (it lived in `meta` as JSON under
-- `account:{provider}:{name}`; those records move here).
CREATE TABLE accounts (
    provider    TEXT NOT NULL,
    account     TEXT NOT NULL,
    health      TEXT NOT NULL,
    reason      TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (provider, account)
) STRICT;

INSERT OR REPLACE INTO accounts (provider, account, health, reason, recorded_at)
SELECT substr(rest, 1, instr(rest, ':') - 1), substr(rest, instr(rest, ':') + 1),
       json_extract(value, '$.health'), json_extract(value, '$.reason'), json_extract(value, '$.at')
FROM (SELECT substr(key, 9) AS rest, value FROM meta
      WHERE key LIKE 'account:%' AND json_valid(value)
        AND json_extract(value, '$.health') IS NOT NULL AND json_extract(value, '$.at') IS NOT NULL)
WHERE instr(rest, ':') > 1;

DELETE FROM meta WHERE key LIKE 'account:%';

-- Which node holds a provider account (a Discord account must have one gateway session at a
-- time): a lease in the database's clock, Unix milliseconds like the jobs'.
CREATE TABLE account_holds (
    account    TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
