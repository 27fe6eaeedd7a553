"""Strategy components by role, fitted on encoder representations; rule-based baselines."""
