-- How many entries each branch has appended for each month: a ranking's mark is the sum over
-- the branches and months it covers, which grows with every append whatever the entries' ids
-- (UUIDv7 from replicas with skewed clocks need not arrive in order), and costs a handful of
-- rows to read where counting the entries would scan the ledger.
CREATE TABLE points_marks (
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    period              TEXT NOT NULL,
    appended            BIGINT NOT NULL,
    PRIMARY KEY (org_id, period)
);
INSERT INTO points_marks (org_id, period, appended)
    SELECT org_id, period, COUNT(*) FROM points_entries GROUP BY org_id, period;
