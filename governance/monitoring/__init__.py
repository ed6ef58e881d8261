"""Continuous monitoring (docs/monitoring.md): the pure maths of drift, degradation and fairness, and the
retraining triggers weighed on their records."""
