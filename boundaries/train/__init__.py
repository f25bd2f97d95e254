"""The training loop (CNN and track-change detector) and multi-process set-up."""
