"""Seeded generators of the bundled simulated datasets (each module states its ground truth)."""
