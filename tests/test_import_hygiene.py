"""The headless core stays light: store/CLI start-up import neither torch nor textual."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "textual", "transformers", "open_clip", "sklearn", "umap")


def _loaded(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {m for m in out if m.split(".")[0] in HEAVY}


@pytest.mark.parametrize(
    "code",
    [
        "import mgap.store, mgap.store.listing, mgap.store.verify, mgap.store.cache",
        "import mgap.cli",
        "from mgap.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass",
        "import mgap.engine.studies",
    ],
)
def test_light_imports(code):
    assert _loaded(code) == set()


def test_store_imports_only_numpy_and_h5py():
    loaded = _loaded("import mgap.store")
    assert not loaded


def test_ls_and_gap_commands_stay_light(tmp_path, make_store, rng):
    p = make_store("g.h5", X=rng.normal(size=(20, 4)), Y=rng.normal(size=(20, 4)))
    for argv in (["ls", "--store-dir", str(tmp_path)], ["gap", str(p)]):
        code = f"from mgap.cli import app\ntry:\n    app({argv!r})\nexcept SystemExit:\n    pass"
        assert not (_loaded(code) & {"torch", "textual"}), argv


def _modules(folder: str, package: str) -> list[str]:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / folder
    return sorted(
        f"{package}.{p.relative_to(root).with_suffix('').as_posix().replace('/', '.')}"
        for p in root.rglob("*.py")
        if p.name != "__init__.py"
    )


def test_engine_never_imports_textual_and_analysis_needs_no_torch():
    engine = _modules("engine", "mgap.engine")
    assert not _loaded("\n".join(f"import {m}" for m in engine)) & {"textual"}
    analysis = [m for m in engine if m.startswith(("mgap.engine.studies", "mgap.engine.plots"))]
    assert not _loaded("\n".join(f"import {m}" for m in analysis)) & {"torch", "textual"}


def test_tui_never_imports_model_code():
    tui = _modules("tui", "mgap.tui")
    loaded = _loaded("\n".join(f"import {m}" for m in tui))
    assert not loaded & {"torch", "transformers", "open_clip"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--perturb", "noise:x"], "--perturb 'noise:x': 'x' is not a number"),
        (["--limit", "0"], "--limit must be at least 1, got 0"),
        (["--decode", "gpu", "--device", "cpu"], "--decode gpu needs a CUDA device"),
    ],
)
def test_a_bad_extract_option_fails_before_torch_loads(extra, message):
    argv = ["extract", "--model", "open_clip:ViT-S-32@random", "--dataset", "synthetic", *extra]
    code = (
        f"import sys\nfrom mgap.cli import main\nsys.argv = ['mgap', *{argv!r}]\ntry:\n"
        "    main()\nexcept SystemExit as exc:\n    print(exc.code, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert message in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "2"
    assert not {m.split(".")[0] for m in done.stdout.split()} & {"torch", "torchvision"}
