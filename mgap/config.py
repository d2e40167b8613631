"""Re-export of `mgap.core.config` for the CLI and existing callers (the loader lives in the core)."""

from mgap.core.config import Config, config_path, load_config

__all__ = ["Config", "config_path", "load_config"]
