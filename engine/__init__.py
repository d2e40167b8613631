"""The headless engine: model adapters, datasets, extraction, measures and studies.

Never imports textual. Measures and studies need no torch except through `compute`.
"""
