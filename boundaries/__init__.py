"""boundaries: find boundaries in audio (DJ-mix crossovers, song sections) with CNNs."""

__version__ = "0.1.0"
