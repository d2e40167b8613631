"""Store writer/reader: row bookkeeping, partial stores, skipped items, verify."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mgap.core.errors import StoreError
from mgap.store import StoreLayout, create_store, open_store
from mgap.store import schema as S
from mgap.store.build import store_from_arrays
from mgap.store.verify import verify_store


def _layout(n: int = 600, captions_per_image: int = 2) -> StoreLayout:
    rows = np.repeat(np.arange(n), captions_per_image)
    return StoreLayout(
        image_ids=[f"img{i}" for i in range(n)],
        image_paths=[f"{i}.jpg" for i in range(n)],
        captions=[f"caption {j}" for j in range(rows.size)],
        caption_image_row=rows,
        category_names=["cat", "dog"],
        supercategories=["animal", "animal"],
        primary=(np.arange(n) % 2).astype(np.int32),
        labels=np.eye(2, dtype=np.uint8)[np.arange(n) % 2],
    )


def test_partial_store_shows_written_rows_only(tmp_path, rng):
    layout = _layout()
    w = create_store(tmp_path / "s.h5", layout, {"model": "m"}, image_dim=4, text_dim=4)
    x = rng.normal(size=(256, 4)).astype(np.float16)
    valid = np.ones(256, dtype=np.uint8)
    valid[3] = 0  # a skipped image
    w.add_skipped("img3", "OSError: truncated")
    w.write_texts(0, rng.normal(size=(1200, 4)))
    w.write_images(0, x, valid)
    s = open_store(tmp_path / "s.h5")
    assert s.status == "partial"
    assert s.n_images == 255 and s.n_images_total == 600
    assert s.n_texts == 2 * 255
    assert s.skipped == {"img3": "OSError: truncated"}
    np.testing.assert_array_equal(s.image_embeddings(np.float16), np.delete(x, 3, axis=0))
    # every caption that counts points at its own image
    assert (
        s.image_ids[s.text_image_index]
        == np.asarray(layout.image_ids)[s.all_caption_image_rows[s.text_rows]]
    ).all()
    assert verify_store(tmp_path / "s.h5")  # partial -> problems reported


def test_complete_store_round_trip_and_verify(tmp_path, rng):
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(10, 3))
    p = store_from_arrays(
        tmp_path / "c.h5",
        image_embeddings=x,
        text_embeddings=y,
        caption_image_row=np.repeat(np.arange(5), 2),
    )
    s = open_store(p)
    assert s.status == S.STATUS_COMPLETE
    np.testing.assert_allclose(s.image_embeddings(), x.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(s.text_image_index, np.repeat(np.arange(5), 2))
    assert verify_store(p) == []


def test_verify_finds_nan_and_bad_status(tmp_path, rng):
    x = rng.normal(size=(4, 3))
    x[1, 0] = np.nan
    p = store_from_arrays(tmp_path / "n.h5", image_embeddings=x, text_embeddings=x.copy())
    problems = verify_store(p)
    assert any("NaN" in p_ for p_ in problems)
    with h5py.File(p, "r+") as f:
        f.attrs["status"] = "failed"
    assert any("status" in p_ for p_ in verify_store(p))


def test_create_never_replaces_existing(tmp_path):
    p = tmp_path / "s.h5"
    create_store(p, _layout(4), {}, image_dim=2, text_dim=None)
    before = p.read_bytes()
    with pytest.raises(StoreError, match="already exists"):
        create_store(p, _layout(4), {}, image_dim=2, text_dim=None)
    assert p.read_bytes() == before


def test_text_only_store_counts_images_once_their_captions_are_written(tmp_path, rng):
    w = create_store(tmp_path / "t.h5", _layout(300), {}, image_dim=None, text_dim=3)
    w.write_texts(0, rng.normal(size=(256, 3)))
    s = open_store(tmp_path / "t.h5")
    assert s.n_images == 128 and s.n_texts == 256 and not s.has_images


def test_layout_rejects_duplicate_ids():
    with pytest.raises(StoreError, match="unique"):
        StoreLayout(
            image_ids=["a", "a"], image_paths=["", ""], captions=[], caption_image_row=np.zeros(0)
        )


def test_writer_is_not_blocked_by_readers(tmp_path, rng):
    """A reader holding the store open (the TUI, `mgap gap`) never fails a running job."""
    import subprocess
    import sys
    import time

    p = tmp_path / "r.h5"
    w = create_store(p, _layout(8), {}, image_dim=2, text_dim=None)
    holders = [
        # mgap's own reader: lock-free, the writer opens at once
        "from mgap.store import open_store; import h5py, time;"
        f"f = h5py.File({str(p)!r}, 'r', locking=False); print('open', flush=True); time.sleep(3)",
        # a locking reader (a user's script): the writer waits until it lets go
        f"import h5py, time; f = h5py.File({str(p)!r}, 'r'); print('open', flush=True); time.sleep(1)",
    ]
    for code in holders:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "open"
        t0 = time.monotonic()
        w.write_images(0, rng.normal(size=(8, 2)), np.ones(8, dtype=np.uint8))
        assert time.monotonic() - t0 < 4.5
        proc.wait()
    assert open_store(p).n_images == 8
