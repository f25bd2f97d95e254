"""Activations, peak picking and decoding, placement, and folder batches."""
