"""The version of forensics, in its own module so that any module can import it without
importing the package's `__init__` (and closing an import cycle through `open_case`)."""

__version__ = "0.1.0"
