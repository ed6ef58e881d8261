"""The simulation harness: simulated apps and their rehearsal, run through Flower's Simulation Engine."""
