"""Per-node privacy accounting: what each node's updates have spent, from the recorded DP events (docs/privacy.md)."""
