"""mgap: the modality gap and representational alignment of vision-language models.

The package root imports nothing heavy: `mgap --help`, `mgap ls` and `mgap gap` must start
without torch or textual (see tests/test_import_hygiene.py).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
