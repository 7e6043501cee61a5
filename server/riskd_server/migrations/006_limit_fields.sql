-- riskd schema, version 6: limits remember their template and may be dynamic (issue 10).
--
-- template: the template a limit was created from ('' when set by hand), so limits can be listed
-- by template. reference_volatility > 0 makes a limit dynamic: its effective threshold is
-- threshold x clamp(reference_volatility / current volatility, min_scale, 1).

ALTER TABLE limits
    ADD COLUMN template             text NOT NULL DEFAULT '',
    ADD COLUMN reference_volatility double precision NOT NULL DEFAULT 0 CHECK (reference_volatility >= 0),
    ADD COLUMN min_scale            double precision NOT NULL DEFAULT 0 CHECK (min_scale >= 0 AND min_scale <= 1);

CREATE INDEX limits_template ON limits (template) WHERE template <> '';
