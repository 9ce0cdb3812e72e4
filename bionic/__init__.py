"""BioNIC: image classifiers wired by one cortical column of mouse V1 (MICrONS)."""

__version__ = "0.1.0"

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
