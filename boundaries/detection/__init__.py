"""Activations, peak picking and decoding, placement, and folder batches."""

# What ``boundaries detect --format`` writes; here, not in batch.py, so building the command's
# parser imports nothing heavy.
OUTPUT_FORMATS = ("txt", "lab", "jams", "json", "csv", "cue", "audacity", "tracklist",
                  "rekordbox")
BATCH_FORMATS = ("csv", "rekordbox")  # one file for the whole batch: boundaries.csv, rekordbox.xml
