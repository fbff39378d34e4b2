"""molddl: Dual-Label Learning for molecules and tables with irregularly missing labels."""

from molddl._version import __version__

__all__ = ["__version__"]
