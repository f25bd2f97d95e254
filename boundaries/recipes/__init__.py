"""Synthetic data and the DJ-mix builder used by data_scripts/."""
