"""Value-at-Risk: the risk model (returns -> covariance), the MAX_VAR terms and position sizing."""
