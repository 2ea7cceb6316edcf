"""Harness for the POSIX timer ID series: get sources, build, boot, test.

The package is importable by pytest (``harness.pytest_plugin``) and runnable
as ``python -m harness``; every module owns one responsibility so host-side
unit tests can exercise it without QEMU.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
