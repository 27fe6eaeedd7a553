"""Research tools: measure what representations know, out of sample."""
