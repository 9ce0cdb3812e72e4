"""Plain nn.Module networks; they know nothing of Lightning."""

from bionic.nets.baseline import BaselineCNN

__all__ = ["BaselineCNN", "BioNIC"]
from bionic.nets.bionic import BioNIC  # noqa: E402,F401  (network helper)
