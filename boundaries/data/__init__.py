"""Annotations, frame labels, the corpus of annotated files, datasets and samplers."""
