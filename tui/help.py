"""The help screen (? or F1): every binding per pane, with the keys the user's config set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def key_label(binding: Binding, keymap: Mapping[str, str]) -> str:
    keys = keymap.get(binding.id or "", binding.key)
    return " / ".join(
        {"question_mark": "?", "slash": "/", "space": "space"}.get(k.strip(), k.strip())
        for k in keys.split(",")
    )


def bindings_table(
    sections: Sequence[tuple[str, Sequence[Binding]]], keymap: Mapping[str, str]
) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, expand=False)
    table.add_column("key", style="bold", no_wrap=True, min_width=12)
    table.add_column("action")
    table.add_column("id", style="dim")
    for title, bindings in sections:
        table.add_row(Text(title, style="bold underline"), "", "")
        for binding in bindings:
            table.add_row(key_label(binding, keymap), binding.description, binding.id or "")
        table.add_row("", "", "")
    return table


class HelpScreen(ModalScreen[None]):
    """Closes with escape, q, ? or F1. Binding ids are what `[keys]` in the config overrides."""

    BINDINGS = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close", show=True),
    ]

    def __init__(
        self, sections: Sequence[tuple[str, Sequence[Binding]]], keymap: Mapping[str, str]
    ) -> None:
        super().__init__()
        self.sections = sections
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(
                r'[b]mgap tui: keys[/b]  (override in the config file: \[keys] id = "key")'
            )
            yield Static(bindings_table(self.sections, self.keymap), id="help-table")
