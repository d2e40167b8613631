"""The Textual TUI behind `mgap tui`: `mgap.tui.app.run_tui` is the entry point.

Imported only by that command (and the demo), never by the CLI's start-up, the store or
the engine; models run in detached `mgap extract` processes, never in this one.
"""
