-- riskd schema, version 8: PostgreSQL fed from the local journal (issue 11).
--
-- One row: the last journal seq whose rows are all committed. The feeder (store.feeder) sets it in
-- the same transaction as those rows, so after a crash of either side it resumes at seq + 1 and
-- every record lands exactly once. 0: nothing from the journal applied yet.

CREATE TABLE journal_applied (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),  -- at most one row
    seq        bigint NOT NULL CHECK (seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO journal_applied (seq) VALUES (0);
