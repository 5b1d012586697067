"""steadyval: why does my validation curve jump around, and which fix works?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("steadyval")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
