"""FER-2013: readers for both public layouts, a decoded-tensor cache, and the DataModule."""

from bionic.data.datamodule import FER2013DataModule
from bionic.data.fer2013 import FERSplits, read_fer2013

__all__ = ["FER2013DataModule", "FERSplits", "read_fer2013"]
