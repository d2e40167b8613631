"""The headless engine: model adapters, datasets, extraction jobs and analysis.

Never imports textual. Analysis modules (`mgap.engine.analysis`) need no torch.
"""
