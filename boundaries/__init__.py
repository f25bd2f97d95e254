"""boundaries: find boundaries in audio (DJ-mix crossovers, song sections).

>>> import boundaries
>>> result = boundaries.detect("mix.mp3")
>>> result.boundaries_s

``import boundaries`` stays light: torch and librosa load when a model or a feature is needed.
"""

__version__ = "0.1.0"
__all__ = ["Detector", "Result", "detect", "__version__"]


def __getattr__(name):
    if name in ("Detector", "Result", "detect"):
        from boundaries import api

        return getattr(api, name)
    raise AttributeError(f"module 'boundaries' has no attribute {name!r}")
