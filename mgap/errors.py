"""Re-export of `mgap.core.errors` for the CLI and existing callers (the types live in the core)."""

from mgap.core.errors import (
    DatasetError,
    MgapError,
    ModelUnavailableError,
    StoreError,
    UsageError,
)

__all__ = ["DatasetError", "MgapError", "ModelUnavailableError", "StoreError", "UsageError"]
