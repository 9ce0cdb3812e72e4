"""Plain nn.Module networks; they know nothing of Lightning."""

from bionic.nets.baseline import BaselineCNN
from bionic.nets.bionic import BioNIC

__all__ = ["BaselineCNN", "BioNIC"]
