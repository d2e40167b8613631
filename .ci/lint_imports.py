"""Check the import-linter contracts of pyproject.toml against this checkout.

import-linter finds a package by its folder, but mgap maps its top-level folders onto one
package (`store/` is `mgap.store`, see [tool.setuptools] package-dir), so this script
copies the sources into that shape in a temporary folder and lints the copy.
Run: python .ci/lint_imports.py [REPO] (exit 0 when every contract is kept; REPO defaults
to this checkout).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def package_tree(repo: Path, dest: Path) -> Path:
    """Lay the package out as installed: dest/mgap/{store,engine,tui,...}."""
    with (repo / "pyproject.toml").open("rb") as fh:
        mapping = tomllib.load(fh)["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items(), key=lambda item: item[0].count(".")):
        target = dest.joinpath(*package.split("."))
        shutil.copytree(repo / folder, target, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def main(repo: Path = REPO) -> int:
    from importlinter.cli import lint_imports

    with tempfile.TemporaryDirectory(prefix="mgap-lint-") as tmp:
        package_tree(repo, Path(tmp))
        sys.path.insert(0, tmp)
        for name in [m for m in sys.modules if m == "mgap" or m.startswith("mgap.")]:
            del sys.modules[name]
        os.chdir(tmp)
        return lint_imports(
            config_filename=str(repo / "pyproject.toml"), no_cache=True, no_logo=True
        )


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else REPO))
