"""Measures: arrays in, numbers out. No store import (an import-linter contract)."""
