"""Real deployment: certificates, the coordinator's SuperLink and the team nodes' SuperNodes."""
