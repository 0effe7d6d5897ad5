"""agentha: high-availability monitor and chaos tester for Frends Agents.

This package is the command line only; the work is done in ``monitor``, ``fleetsim``,
``chaos``, ``loadtests`` and ``tui``.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
