"""Simulation scenarios, bundled datasets and partitioners, run through Flower's Simulation Engine."""
