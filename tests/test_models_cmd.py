"""`mgap models`: the catalog on stdout, availability from the caches, exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import jsonschema
import pytest
from tiny_clip_models import fake_hub_cache

from mgap.core.errors import ModelUnavailableError
from mgap.engine.models.catalog import (
    RECOMMENDED,
    catalog,
    check_offline,
    locate,
    open_clip_table,
)
from mgap.engine.reports import REPORTS, json_schema
from mgap.engine.specs import parse_model_spec

KEYS = {
    "spec",
    "family",
    "description",
    "image",
    "text",
    "recommended",
    "available_offline",
    "where",
}


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A hub cache holding one recommended checkpoint, a cache dir with one toy model."""
    hub = tmp_path / "hub"
    source = tmp_path / "clip-src"
    source.mkdir()
    (source / "config.json").write_text('{"model_type": "clip"}')
    (source / "model.safetensors").write_bytes(b"")
    snapshot = fake_hub_cache(hub, "openai/clip-vit-base-patch32", source)
    (tmp_path / "cache" / "toy" / "demo").mkdir(parents=True)
    open_clip_table(tmp_path / "cache")  # built here once, so the CLI runs skip open_clip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    values = {
        "HF_HUB_CACHE": str(hub),
        "MGAP_CACHE_DIR": str(tmp_path / "cache"),
        "MGAP_STORE_DIR": str(tmp_path / "stores"),
        "HF_ENDPOINT": f"http://127.0.0.1:{closed}",
        "HOME": str(tmp_path / "home"),
        "COLUMNS": "200",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {"vars": values, "snapshot": snapshot, "tmp": tmp_path}


def test_json_catalog_marks_cached_local_and_toy_models(env, cli, minilm_dir):
    result = cli(
        "models",
        "--json",
        "-f",
        "hf",
        "-f",
        "st",
        "-f",
        "vision",
        "-f",
        "toy",
        "-f",
        "llava",
        env=env["vars"],
    )
    assert result.returncode == 0, result.stderr
    jsonschema.validate(json.loads(result.stdout), json_schema(REPORTS["models"]))
    entries = {e["spec"]: e for e in json.loads(result.stdout)}
    assert all(set(e) == KEYS for e in entries.values())
    assert {spec for spec, *_ in RECOMMENDED} <= set(entries)
    clip = entries["hf:openai/clip-vit-base-patch32"]
    assert clip["available_offline"] and clip["where"] == str(env["snapshot"])
    assert clip["image"] and clip["text"] and clip["recommended"]
    large = entries["hf:openai/clip-vit-large-patch14"]
    assert not large["available_offline"]
    assert large["where"] == "https://huggingface.co/openai/clip-vit-large-patch14"
    local = entries[f"st:{minilm_dir.resolve()}"]
    assert local["available_offline"] and local["text"] and not local["image"]
    assert entries["vision:facebook/dinov2-base"]["text"] is False
    toy = entries["toy:demo"]
    assert toy["available_offline"] and toy["where"].endswith("toy/demo")
    available = {s for s, e in entries.items() if e["available_offline"]}
    assert available == {
        "hf:openai/clip-vit-base-patch32",
        f"st:{minilm_dir.resolve()}",
        "toy:demo",
    }


def test_offline_filter_and_family_filter(env, cli):
    result = cli("models", "--json", "--offline", "--family", "hf", env=env["vars"])
    assert result.returncode == 0, result.stderr
    assert [e["spec"] for e in json.loads(result.stdout)] == ["hf:openai/clip-vit-base-patch32"]


def test_open_clip_entries_cover_every_pretrained_tag(env):
    import open_clip

    entries = catalog(None, families=("open_clip",), cache_dir=env["tmp"] / "cache")
    pairs = {(parse_model_spec(e.spec).id, parse_model_spec(e.spec).tag) for e in entries}
    assert pairs == set(open_clip.list_pretrained())
    assert len(entries) == len(pairs)
    by_spec = {e.spec: e for e in entries}
    b32 = by_spec["open_clip:ViT-B-32@openai"]
    assert b32.recommended and not b32.available_offline
    assert b32.where == "timm/vit_base_patch32_clip_224.openai"
    # recommended first
    assert entries[0].recommended and not entries[-1].recommended


def test_open_clip_table_is_cached_per_version(env, monkeypatch):
    import importlib.metadata

    import open_clip

    cache = env["tmp"] / "fresh-cache"
    first = catalog(None, families=("open_clip",), cache_dir=cache)
    version = importlib.metadata.version("open_clip_torch")
    assert (cache / f"open_clip-{version}-pretrained.json").is_file()

    def no_listing():
        raise AssertionError("open_clip was asked again")

    monkeypatch.setattr(open_clip, "list_pretrained", no_listing)
    assert catalog(None, families=("open_clip",), cache_dir=cache) == first


def test_models_used_by_stores_are_listed(env, make_store, rng, minilm_dir):
    store_dir = env["tmp"] / "stores"
    store_dir.mkdir()
    folder = env["tmp"] / "my-encoder"
    folder.mkdir()
    make_store(
        "stores/a.h5",
        Y=rng.normal(size=(3, 4)),
        image_ids=["a", "b", "c"],
        captions=["x", "y", "z"],
        provenance={"model": f"st:{folder}"},
    )
    entries = {
        e.spec: e for e in catalog(store_dir, cache_dir=env["tmp"] / "cache", families=("st",))
    }
    mine = entries[f"st:{folder}"]
    assert mine.available_offline and mine.text and not mine.image
    assert mine.description == "used by a.h5"


def test_table_output(env, cli):
    result = cli("models", "--family", "hf", env=env["vars"])
    assert result.returncode == 0, result.stderr
    assert "hf:openai/clip-vit-base-patch32" in result.stdout and "✓" in result.stdout
    assert "models" in result.stderr


def test_check_reports_available_models(env, cli, minilm_dir):
    result = cli(
        "models",
        "--check",
        f"st:{minilm_dir}",
        "--check",
        "hf:openai/clip-vit-base-patch32",
        "--json",
        env=env["vars"],
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [f["where"] for f in found] == [str(minilm_dir.resolve()), str(env["snapshot"])]


def test_locate_covers_every_family(env, minilm_dir):
    cache = env["tmp"] / "cache"
    assert locate("open_clip:ViT-B-32@random") == (True, "random init")
    assert locate("toy:demo", cache) == (True, str(cache / "toy" / "demo"))
    assert locate("toy:absent", cache)[0] is False
    assert locate(f"st:{minilm_dir}") == (True, str(minilm_dir.resolve()))
    assert locate("st:all-MiniLM-L6-v2") == (False, "sentence-transformers/all-MiniLM-L6-v2")
    assert locate("vision:timm/vit_tiny_patch16_224.augreg_in21k")[0] is False
    with pytest.raises(ModelUnavailableError, match="toy:absent"):
        check_offline("toy:absent", cache)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--family", "nope"], 2, "unknown model family nope"),
        (["--check", "nofamily"], 2, "has no family"),
        (["--check", "hf:openai/clip-vit-large-patch14"], 1, "not available offline"),
        (["--check", "open_clip:ViT-B-32@openai"], 1, "timm/vit_base_patch32_clip_224.openai"),
        (["--check", "open_clip:ViT-B-32@nope"], 2, "no open_clip architecture"),
    ],
)
def test_bad_input_is_one_line(env, cli, args, code, needle):
    result = cli("models", *args, env=env["vars"])
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("mgap: error:")
    assert result.stdout == ""


def test_catalog_import_needs_no_torch():
    code = (
        "import sys, mgap.engine.models.catalog, mgap.commands.models_cmd;"
        "print(any(m in sys.modules for m in ('torch', 'open_clip', 'textual')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
