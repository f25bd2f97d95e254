"""Audio decoding, the frame clock, log-mel features and their cache, novelty and descriptors."""
