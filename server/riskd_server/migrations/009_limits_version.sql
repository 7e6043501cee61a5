-- riskd schema, version 9: the highest limits_version recorded, so versions only go up across
-- restarts (issue 10). One row, raised in the same transaction as the limit history rows of every
-- flush that changes limits (greatest(), so a flush split for the dead letter cannot lower it);
-- recovery starts the limit book at this version. Seeded from the history kept so far.

CREATE TABLE limits_version (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),  -- at most one row
    version bigint NOT NULL CHECK (version >= 0)
);

INSERT INTO limits_version (version) SELECT coalesce(max(limits_version), 0) FROM limit_history;
