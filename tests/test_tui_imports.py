"""The TUI's first frame appears without torch or the analysis stack (docs/design.md §2-§3)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HEAVY = ("torch", "open_clip", "transformers", "sklearn", "umap", "openTSNE", "matplotlib")

PROBE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mgap.tui.app import MgapApp

    class Probe(MgapApp):
        def on_ready(self) -> None:
            heavy = [m for m in {heavy!r} if m in sys.modules]
            print("HEAVY=" + ",".join(heavy), flush=True)
            self.exit()

    Probe(Path(sys.argv[1])).run(headless=True, size=(80, 24))
    """
)


def test_first_frame_imports_neither_torch_nor_analysis_libraries(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("HEAVY=")]
    assert line == "HEAVY="


def test_mgap_tui_refuses_a_non_terminal_with_one_line(cli, tmp_path):
    done = cli("tui", "--store-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("mgap: error: mgap tui needs an interactive terminal")
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
