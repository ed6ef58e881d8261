"""Continuous monitoring: drift, degradation and fairness from node summaries, and the retraining triggers."""
