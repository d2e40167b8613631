"""Attention maps of vision towers and their entropy (`mgap attention`).

`maps` runs the model (an engine job: the TUI only launches `mgap attention --json`),
`entropy` is the numpy arithmetic, `report` samples a store's images and builds the JSON.
"""
