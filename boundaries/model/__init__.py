"""Networks, losses, checkpoints and the track-change detector's parts."""
