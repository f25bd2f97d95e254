"""Frame and boundary metrics, evaluation and tuning, plots."""
