"""Continuous monitoring: the pure maths of drift, degradation and fairness (docs/monitoring.md)."""
