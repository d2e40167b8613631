"""Lists kept in one place: model families, captions per synthetic image, the error core."""

from __future__ import annotations

import importlib.util
import re

import pytest

from mgap.core.errors import UsageError


def test_every_family_has_its_adapter_module_and_the_catalog_shares_the_list():
    from mgap.engine.models import catalog
    from mgap.engine.specs import FAMILIES, FAMILY_MODULES, parse_model_spec

    assert FAMILIES[:6] == ("open_clip", "hf", "llava", "vision", "st", "toy")
    assert catalog.FAMILIES is FAMILIES
    for family, module in FAMILY_MODULES.items():
        assert importlib.util.find_spec(f"mgap.engine.models.{module}") is not None, family
        assert parse_model_spec(f"{family}:x").family == family
    with pytest.raises(UsageError, match=re.escape(f"(use one of: {', '.join(FAMILIES)})")):
        parse_model_spec("nope:x")


def test_captions_per_synthetic_image_is_one_constant():
    from mgap.engine.datasets.synthetic import CAPTIONS_PER_IMAGE, load
    from mgap.engine.toy.config import TrainConfig
    from mgap.tui.sources import synthetic_row

    assert CAPTIONS_PER_IMAGE == 3
    manifest = load(None, "test", kind="synthetic", n=4)
    assert [len(r.captions) for r in manifest.records] == [3, 3, 3, 3]
    assert TrainConfig().captions_per_image == 3
    assert synthetic_row().n_captions == {"test": 1500, "train": 6000}


def test_errors_have_one_import_path_and_the_cli_config_re_exports_the_core():
    import importlib

    import mgap.config
    import mgap.core.config

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("mgap.errors")  # the types live in mgap.core.errors only
    assert mgap.config.load_config is mgap.core.config.load_config
