"""wcperf: performance operations for the White Cross school health database."""

__version__ = "0.1.0"
