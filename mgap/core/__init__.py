"""The core every layer shares: error types and the user configuration (stdlib only).

The store, the engine and the TUI import these from here, never from the CLI modules
(`mgap.cli`, `mgap.commands`, `mgap.output`); import-linter contracts in pyproject.toml
keep it so. Errors have this one import path; `mgap.config` re-exports the configuration.
"""
