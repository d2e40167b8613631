"""Results pane: the keys of the Depth view (a mixin of `ResultsPane`, docs/design.md §7).

`d` opens Results › Depth for a store with per-layer states and shows in the footer and
the help only for such a store; on a store without layers the same key says so in one
line. Escape goes back to the view Depth was opened from. A worker reads which sides of
each shown store hold layers (`LayersFound`), so no store is opened on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding
from textual.message import Message
from textual.widgets import ContentSwitcher

from mgap.tui.depth_data import cka_refs
from mgap.tui.view_depth import DepthView


@dataclass
class LayersFound(Message, bubble=False):
    """The sides of `path` with per-layer states (empty: none, no Depth view)."""

    path: Path
    sides: tuple[str, ...]


def compute_layer_sides(path: Path) -> LayersFound:
    from mgap.tui.depth_data import layer_sides

    return LayersFound(path, layer_sides(path))


class DepthKeys:
    """The pane keeps `current`, `paths`, `layer_sides` (sides with layers per store, once
    read), `before_depth` (the view to go back to) and `_views()` (the per-store views)."""

    def on_layers_found(self, message: LayersFound) -> None:
        self.layer_sides[message.path] = message.sides
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`d` opens Depth on a store with layers (and only then shows in the footer); on any
        other it is the hidden `no_depth`. Escape leaves Depth."""
        layered = bool(self.layer_sides.get(self.current)) if self.current else False
        if action == "depth":
            return layered
        if action == "no_depth":
            return not layered
        if action == "back":
            return self.query_one(ContentSwitcher).current == "depth"
        return True

    def help_bindings(self) -> list[Binding]:
        """The bindings the help screen lists now: `d` only for a store with layers, Escape
        only in Depth (the hidden `no_depth` never)."""
        return [
            b
            for b in self.BINDINGS
            if b.action != "no_depth" and self.check_action(b.action, ()) is not False
        ]

    def action_depth(self) -> None:
        path = self.current
        if path is None:
            return
        switcher = self.query_one(ContentSwitcher)
        if switcher.current != "depth":
            self.before_depth = switcher.current or "scatter"
            for view in self._views():
                view.activate(False)
        others = [p for p in self.paths if p != path and self.layer_sides.get(p)]
        other = others[0] if len(self.paths) == 2 and others else None
        sides = self.layer_sides[path]
        refs = cka_refs(path, sides, other, self.layer_sides.get(other, ()) if other else ())
        depth = self.query_one(DepthView)
        switcher.current = "depth"
        depth.open(path, refs)
        depth.focus_table()
        self.refresh_bindings()

    def action_no_depth(self) -> None:
        if self.current is None:
            return
        name = self.current.name
        if self.current in self.layer_sides:
            line = f"{name} has no per-layer states: extract with --layers all for the Depth view"
        else:
            line = f"reading the layers of {name}…"
        self.notify(line, title="Depth", severity="warning")

    def action_back(self) -> None:
        self._leave_depth()

    def _leave_depth(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        if switcher.current != "depth":
            return
        self.query_one(DepthView).close()
        switcher.current = self.before_depth
        for view in self._views():
            view.activate(view.id == switcher.current)
            if view.id == switcher.current:
                view.focus_table()
        if switcher.current in ("scatter", "metrics"):
            self.focus_default()
        self.refresh_bindings()
