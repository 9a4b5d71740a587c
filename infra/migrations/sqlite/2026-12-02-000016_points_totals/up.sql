-- Each member's posted points per branch and month, kept in the transaction of every append
-- (a posted entry adds its delta; a pending one waits for its decision entry): a ranking sums
-- a row per member and month instead of scanning the month's entries (a township's month is
-- 800,000 of a 10,000,000-entry ledger). The entries stay the record; these rows are their sum,
-- which a test checks against the entries.
CREATE TABLE points_totals (
    member_id           TEXT NOT NULL REFERENCES members (id),
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    period              TEXT NOT NULL,
    total               BIGINT NOT NULL,
    PRIMARY KEY (org_id, period, member_id)
);
INSERT INTO points_totals (member_id, org_id, period, total)
    SELECT member_id, org_id, period, SUM(delta) FROM points_entries
    WHERE NOT pending GROUP BY member_id, org_id, period;
