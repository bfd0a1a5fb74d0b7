"""bootstrap: build minimal, reproducible Linux base container images from distribution packages."""

__version__ = "0.1.0"
