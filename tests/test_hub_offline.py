"""Weights that are neither local nor cached fail fast with one line naming the fix.

Without this, transformers retries for ~30 s and open_clip for ~50 s before failing.
The hub endpoint is pointed at a closed local port so the tests behave the same with or
without network.
"""

from __future__ import annotations

import socket
import time

import open_clip  # noqa: F401 - imported up front so the timings measure the look-up only
import pytest
import timm  # noqa: F401
import transformers  # noqa: F401

from mgap.core.errors import ModelUnavailableError
from mgap.engine.models import load_model
from mgap.engine.models.hub import hub_offline, resolve_pretrained

UNCACHED = [
    "hf:mgap-test/not-cached",
    "st:mgap-test/not-cached",
    "vision:mgap-test/not-cached",
    "vision:timm/vit_tiny_patch16_224.augreg_in21k",
    "open_clip:ViT-B-32@openai",
    "open_clip:ViT-B-32@laion2b_s34b_b79k",
    "open_clip:hf-hub:mgap-test/not-cached",
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """An empty HF cache and a hub that refuses connections."""
    env = {
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
        "HOME": str(tmp_path / "home"),  # open_clip's URL cache lives under ~/.cache/clip
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(key, raising=False)
    hub_offline.cache_clear()
    yield env
    hub_offline.cache_clear()


@pytest.mark.parametrize("spec", UNCACHED)
def test_uncached_weights_fail_in_under_two_seconds(spec, offline_env):
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as info:
        load_model(spec)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{spec} took {elapsed:.2f} s to fail"
    line = info.value.one_line()
    assert "\n" not in line and str(spec) in line
    assert "HF_HOME" in line and "download" in line


def test_probe_follows_the_environment(offline_env, monkeypatch):
    assert hub_offline() is True  # the closed port refuses at once
    hub_offline.cache_clear()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub_offline() is False
        hub_offline.cache_clear()
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the switch wins over a reachable hub
        assert hub_offline() is True


def test_probe_of_a_hanging_host_gives_up_within_a_second(offline_env, monkeypatch):
    """A DNS look-up or connect that hangs (no timeout of its own) cannot hold the probe."""

    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    assert hub_offline() is True
    assert time.perf_counter() - start < 1.5


def test_local_folder_wins_and_missing_folders_are_named(tmp_path, offline_env):
    (tmp_path / "m").mkdir()
    assert resolve_pretrained(str(tmp_path / "m"), what="x") == (tmp_path / "m").resolve()
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve_pretrained(str(tmp_path / "absent"), what="model hf:absent")


def test_a_cache_without_weights_is_not_available(tmp_path, offline_env):
    from tiny_clip_models import fake_hub_cache

    source = tmp_path / "src"
    source.mkdir()
    (source / "config.json").write_text('{"model_type": "clip"}')
    fake_hub_cache(offline_env["HF_HUB_CACHE"], "mgap-test/config-only", source)
    with pytest.raises(ModelUnavailableError, match="mgap-test/config-only"):
        resolve_pretrained("mgap-test/config-only", what="model hf:mgap-test/config-only")
    (source / "model.safetensors").write_bytes(b"")
    snapshot = fake_hub_cache(offline_env["HF_HUB_CACHE"], "mgap-test/config-only", source)
    assert resolve_pretrained("mgap-test/config-only", what="m") == snapshot


@pytest.mark.parametrize("spec", ["hf:mgap-test/not-cached", "st:not-cached", "vision:a/b"])
def test_cli_check_fails_with_one_line(spec, offline_env, cli):
    start = time.perf_counter()
    result = cli("models", "--check", spec, env=offline_env)
    elapsed = time.perf_counter() - start
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mgap: error: model ")
    assert "not available offline" in lines[0] and "Traceback" not in result.stderr
    assert elapsed < 15, elapsed  # seconds of start-up at most, never the 30-50 s of retries


def test_cli_extract_with_uncached_open_clip_fails_with_one_line(
    offline_env, extract_cli, tmp_path
):
    result = extract_cli.run(
        "open_clip:ViT-B-32@openai",
        limit=2,
        args=["--store-dir", str(tmp_path / "stores"), "--quiet"],
        env=offline_env,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mgap: error:")]
    assert len(errors) == 1 and "timm/vit_base_patch32_clip_224.openai" in errors[0]
    assert "Traceback" not in result.stderr
