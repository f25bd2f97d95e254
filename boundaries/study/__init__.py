"""The imbalance-strategy study and its classical baselines."""
