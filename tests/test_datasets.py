"""Dataset loaders on small fake datasets of every format, plus the real tiny_coco."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from mgap.core.errors import DatasetError, UsageError
from mgap.engine.datasets import load_manifest
from mgap.engine.datasets.detect import detect_dataset


def png(path: Path, color: tuple[int, int, int] = (255, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), color).save(path)
    return path


def write_json(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- COCO ----------------------------------------------------------------------------


def fake_coco(root: Path, split: str = "val2017", *, instances: bool = True) -> Path:
    """Three images (one file missing), captions out of id order, areas with a tie."""
    images = [
        {"id": 30, "file_name": "c.png"},
        {"id": 7, "file_name": "a.png"},
        {"id": 12, "file_name": "b.png"},
    ]
    captions = [
        {"id": 5, "image_id": 7, "caption": "  second of a  "},
        {"id": 2, "image_id": 7, "caption": "first of a"},
        {"id": 9, "image_id": 12, "caption": "only of b"},
        {"id": 1, "image_id": 30, "caption": "only of c\n"},
    ]
    write_json(
        root / "annotations" / f"captions_{split}.json",
        {"images": images, "annotations": captions},
    )
    png(root / "images" / split / "a.png")
    png(root / "images" / split / "b.png")  # c.png is missing on purpose
    if instances:
        categories = [
            {"id": 18, "name": "dog", "supercategory": "animal"},
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 3, "name": "car", "supercategory": "vehicle"},
        ]
        polygon = [[1.5, 2.0, 3e2, 4.25], [5, 6, 7, 8]]
        rle = {"counts": 'a\\0"}{[', "size": [4, 4]}  # compressed RLE, odd characters
        anns = [  # image 7: dog 30+30=60 beats person 50; image 12: car 40 ties dog 40
            {"id": 1, "image_id": 7, "category_id": 18, "area": 30.0, "segmentation": polygon},
            {"id": 2, "image_id": 7, "category_id": 1, "segmentation": rle, "area": 50.0},
            {"id": 3, "image_id": 7, "category_id": 18, "area": 30.0},
            {"id": 4, "image_id": 12, "category_id": 18, "area": 40.0, "iscrowd": 1},
            {"id": 5, "image_id": 12, "category_id": 3, "area": 40.0, "segmentation": []},
        ]
        anns[3]["segmentation"] = {"counts": [0, 3, 13], "size": [4, 4]}
        write_json(
            root / "annotations" / f"instances_{split}.json",
            {"images": images, "annotations": anns, "categories": categories},
        )
    return root


def test_coco_fake_records_categories_and_primary(tmp_path):
    root = fake_coco(tmp_path / "coco")
    m = load_manifest("coco", root)
    assert (m.dataset, m.split, m.root) == ("coco", "val2017", str(root.resolve()))
    assert [r.id for r in m.records] == ["7", "12", "30"]  # by image id
    assert [r.path for r in m.records] == [
        "images/val2017/a.png",
        "images/val2017/b.png",
        "images/val2017/c.png",  # missing file kept: the extractor skips it with a reason
    ]
    assert m.records[0].captions == ["first of a", "second of a"]  # annotation id order
    assert m.records[2].captions == ["only of c"]
    assert m.category_names == ["person", "car", "dog"]  # category id order
    assert m.supercategories == {"person": "person", "car": "vehicle", "dog": "animal"}
    assert m.records[0].categories == ["person", "dog"]
    assert m.records[0].primary == "dog"  # total area 60 > 50
    assert m.records[1].primary == "car"  # 40 = 40: lower category id wins
    assert (m.records[2].categories, m.records[2].primary) == ([], None)
    assert m.prompt_templates[0] == "a photo of a {}." and len(m.prompt_templates) > 1
    ann = root / "annotations"
    assert m.annotation_sha256 == (
        f"captions_val2017.json:{sha(ann / 'captions_val2017.json')} "
        f"instances_val2017.json:{sha(ann / 'instances_val2017.json')}"
    )
    primary, labels = m.label_arrays()
    assert primary.tolist() == [2, 1, -1]
    assert labels.tolist() == [[1, 0, 1], [0, 1, 1], [0, 0, 0]]
    assert m.load_image(0).size == (4, 4)


def test_coco_without_instances_and_plain_split_folder(tmp_path):
    root = fake_coco(tmp_path / "coco", "train2014", instances=False)
    (root / "images" / "train2014").rename(root / "train2014")
    m = load_manifest("coco", root, "train2014", limit=2)
    assert m.category_names == [] and all(r.primary is None for r in m.records)
    assert [r.path for r in m.records] == ["train2014/a.png", "train2014/b.png"]
    assert m.annotation_sha256.startswith("captions_train2014.json:")


def test_coco_default_split(tmp_path):
    root = fake_coco(tmp_path / "coco", "train2017")
    fake_coco(root, "val2017")
    assert load_manifest("coco", root).split == "val2017"
    fake_coco(tmp_path / "two", "a")
    fake_coco(tmp_path / "two", "b")
    with pytest.raises(UsageError, match=r"--split \(a, b\)"):
        load_manifest("coco", tmp_path / "two")


def test_coco_errors(tmp_path):
    with pytest.raises(UsageError, match="needs --data-root"):
        load_manifest("coco", None)
    with pytest.raises(DatasetError, match="does not exist"):
        load_manifest("coco", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"annotations/captions_val2017.json"):
        load_manifest("coco", tmp_path / "empty")
    root = fake_coco(tmp_path / "coco")
    with pytest.raises(UsageError, match="available splits: val2017"):
        load_manifest("coco", root, "test2017")
    with pytest.raises(UsageError, match="takes no option"):
        load_manifest("coco", root, bogus=1)
    instances = root / "annotations" / "instances_val2017.json"
    instances.write_text('{"annotations": [{"segmentation": [[1,\n2,\n3]]},\n oops]}')
    with pytest.raises(DatasetError, match=r"instances_val2017.json at line 4, column 2"):
        load_manifest("coco", root)
    instances.unlink()
    bad = root / "annotations" / "captions_val2017.json"
    bad.write_text('{"images": [\n  {"id": 1,\n  "file_name": }]}')
    with pytest.raises(DatasetError, match=r"malformed JSON in .*captions_val2017.json at line 3"):
        load_manifest("coco", root)
    bad.write_text('{"images": [{"file_name": "x.png"}], "annotations": []}')
    with pytest.raises(DatasetError, match="missing key 'id'"):
        load_manifest("coco", root)
    bad.write_text('{"images": [], "annotations": []}')
    with pytest.raises(DatasetError, match="no images found"):
        load_manifest("coco", root)


def test_segmentation_cut_keeps_everything_else(tiny_coco):
    from mgap.engine.datasets.coco import _drop_segmentation

    raw = (tiny_coco / "annotations" / "instances_train2017.json").read_bytes()
    full, cut = json.loads(raw), json.loads(_drop_segmentation(raw))
    assert {type(a["segmentation"]).__name__ for a in full["annotations"]} == {"list", "dict"}
    assert all(a["segmentation"] == 0 for a in cut["annotations"])
    for a in full["annotations"]:
        a["segmentation"] = 0
    assert cut == full


def test_tiny_coco_against_the_json(tiny_coco):
    m = load_manifest("coco", tiny_coco)
    ann = tiny_coco / "annotations"
    captions = json.loads((ann / "captions_train2017.json").read_text())
    instances = json.loads((ann / "instances_train2017.json").read_text())
    assert m.split == "train2017"
    assert len(m.records) == len(captions["images"]) == 50
    assert sum(len(r.captions) for r in m.records) == len(captions["annotations"]) == 250
    assert [int(r.id) for r in m.records] == sorted(i["id"] for i in captions["images"])
    assert all((tiny_coco / r.path).is_file() for r in m.records)
    by_id = {r.id: r for r in m.records}
    # image 391895 by hand: person 14107.27 + 708.26 = 14815.53 > motorcycle 12190.45 > bicycle
    assert by_id["391895"].categories == ["person", "bicycle", "motorcycle"]
    assert by_id["391895"].primary == "person"
    assert by_id["391895"].captions[0] == "A man with a red helmet on a small moped on a dirt road."
    # every image against a plain independent computation
    area: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for a in instances["annotations"]:
        area[a["image_id"]][a["category_id"]] += a["area"]
    name = {c["id"]: c["name"] for c in instances["categories"]}
    for record in m.records:
        totals = area.get(int(record.id), {})
        best = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
        assert record.primary == (name[best[0][0]] if best else None)
        assert record.categories == [name[c] for c in sorted(totals)]
    assert sum(r.primary is None for r in m.records) == 1
    assert m.category_names == [
        c["name"] for c in sorted(instances["categories"], key=lambda c: c["id"])
    ]
    assert m.supercategories["motorcycle"] == "vehicle"
    assert (
        m.annotation_sha256.split()[1]
        == f"instances_train2017.json:{sha(ann / 'instances_train2017.json')}"
    )


# ---- Flickr30k ------------------------------------------------------------------------


def fake_karpathy(root: Path) -> Path:
    def image(imgid: int, split: str, sentences: list[tuple[int, str]]) -> dict:
        return {
            "imgid": imgid,
            "filename": f"{1000 + imgid}.jpg",
            "split": split,
            "sentences": [{"sentid": s, "raw": raw, "tokens": raw.split()} for s, raw in sentences],
        }

    images = [
        image(2, "test", [(11, "b two"), (10, "b one ")]),
        image(0, "train", [(0, "a one")]),
        image(1, "test", [(5, "c one")]),
        image(3, "val", [(7, "d one")]),
    ]
    write_json(root / "dataset_flickr30k.json", {"images": images, "dataset": "flickr30k"})
    png(root / "flickr30k-images" / "1001.jpg")
    return root


def test_flickr30k_karpathy(tmp_path):
    root = fake_karpathy(tmp_path / "f30k")
    m = load_manifest("flickr30k", root)  # default: the test split papers report on
    assert m.split == "test"
    assert [(r.id, r.path) for r in m.records] == [
        ("1001", "flickr30k-images/1001.jpg"),
        ("1002", "flickr30k-images/1002.jpg"),
    ]
    assert m.records[1].captions == ["b one", "b two"]  # by sentid
    assert m.annotation_sha256 == f"dataset_flickr30k.json:{sha(root / 'dataset_flickr30k.json')}"
    assert [r.id for r in load_manifest("flickr30k", root, "train").records] == ["1000"]
    with pytest.raises(UsageError, match="available splits: test, train, val"):
        load_manifest("flickr30k", root, "dev")


def test_flickr30k_results_csv(tmp_path):
    root = tmp_path / "flickr30k_images"
    root.mkdir()
    (root / "results.csv").write_text(
        "image_name| comment_number| comment\n"
        "9.jpg| 1| nine second\n"
        "9.jpg| 0| nine first\n"
        "2199200615.jpg| 4 A dog runs across the grass .\n"  # the public file's broken row
    )
    png(root / "flickr30k_images" / "9.jpg")
    m = load_manifest("flickr30k", root)
    assert m.split == "all"
    assert [(r.id, r.path, r.captions) for r in m.records] == [
        ("9", "flickr30k_images/9.jpg", ["nine first", "nine second"]),
        ("2199200615", "flickr30k_images/2199200615.jpg", ["A dog runs across the grass ."]),
    ]
    (root / "results.csv").write_text("image_name| comment_number| comment\nno separators\n")
    with pytest.raises(DatasetError, match="results.csv at line 2"):
        load_manifest("flickr30k", root)
    with pytest.raises(DatasetError, match="dataset_flickr30k.json"):
        load_manifest("flickr30k", tmp_path)


# ---- nocaps ---------------------------------------------------------------------------


def fake_nocaps(root: Path) -> Path:
    images = [
        {"id": 1, "file_name": "b.jpg", "open_images_id": "b", "domain": "out-domain"},
        {"id": 0, "file_name": "a.jpg", "open_images_id": "a", "domain": "in-domain"},
    ]
    anns = [
        {"id": 3, "image_id": 1, "caption": "b cap"},
        {"id": 0, "image_id": 0, "caption": "a cap 1"},
        {"id": 1, "image_id": 0, "caption": "a cap 2"},
    ]
    write_json(root / "nocaps_val_image_info.json", {"images": images})
    write_json(root / "nocaps_val_4500_captions.json", {"images": images, "annotations": anns})
    write_json(root / "annotations" / "nocaps_test_image_info.json", {"images": images[:1]})
    png(root / "val" / "a.jpg")
    return root


def test_nocaps(tmp_path):
    root = fake_nocaps(tmp_path / "nocaps")
    m = load_manifest("nocaps", root)
    assert m.split == "val"
    assert m.annotation_sha256.startswith("nocaps_val_4500_captions.json:")  # captions file wins
    assert [(r.id, r.path, r.captions) for r in m.records] == [
        ("0", "val/a.jpg", ["a cap 1", "a cap 2"]),
        ("1", "val/b.jpg", ["b cap"]),
    ]
    assert m.category_names == ["in-domain", "near-domain", "out-domain"]
    assert [(r.primary, r.categories) for r in m.records] == [
        ("in-domain", ["in-domain"]),
        ("out-domain", ["out-domain"]),
    ]
    assert m.records[1].attributes == {"domain": "out-domain", "open_images_id": "b"}
    assert load_manifest("nocaps", root, "test").records[0].path == "test/b.jpg"
    png(root / "images" / "b.jpg")
    test = load_manifest("nocaps", root, "test")
    assert [(r.id, r.captions, r.path) for r in test.records] == [("1", [], "images/b.jpg")]
    with pytest.raises(UsageError, match="available splits: test, val"):
        load_manifest("nocaps", root, "train")


# ---- csv / jsonl ----------------------------------------------------------------------


def test_csv_rows_merge_into_images(tmp_path):
    png(tmp_path / "img" / "x.png")
    absolute = png(tmp_path / "elsewhere" / "y.png")
    table = tmp_path / "data" / "pairs.csv"
    table.parent.mkdir()
    rows = [
        ["image_path", "Caption", "category", "source", "split"],
        ["../img/x.png", "x one", "cat", "web", "train"],
        [str(absolute), "y one, with comma", "dog", "", "train"],
        ["../img/x.png", "x two", "animal", "lab", "train"],
        ["../img/z.png", "z only", "", "", "test"],
    ]
    with table.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    m = load_manifest("csv", table.parent)  # a folder holding exactly one csv
    assert (m.dataset, m.split, m.root) == ("csv", "pairs", str(table.parent.resolve()))
    assert [(r.id, r.captions) for r in m.records] == [
        ("../img/x.png", ["x one", "x two"]),
        (str(absolute), ["y one, with comma"]),
        ("../img/z.png", ["z only"]),
    ]
    x = m.records[0]
    assert (x.categories, x.primary, x.attributes) == (["animal", "cat"], "cat", {"source": "web"})
    assert m.category_names == ["animal", "cat", "dog"]
    assert m.records[1].attributes == {}
    assert m.load_image(0).size == (4, 4) and m.load_image(1).size == (4, 4)
    assert m.annotation_sha256 == f"pairs.csv:{sha(table)}"
    assert [r.id for r in load_manifest("csv", table, "test").records] == ["../img/z.png"]


def test_tsv_with_ids(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("id\tfile_name\ttext\n7\ta.png\thello\n7\ta.png\tagain\n3\tb.png\tbye\n")
    m = load_manifest("csv", table)
    assert [(r.id, r.path, r.captions) for r in m.records] == [
        ("7", "a.png", ["hello", "again"]),
        ("3", "b.png", ["bye"]),
    ]
    table.write_text("id\tfile_name\ttext\n7\ta.png\thello\n7\tb.png\tbye\n")
    with pytest.raises(DatasetError, match=r"line 3: id '7' names two images"):
        load_manifest("csv", table)


def test_csv_errors(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("picture,caption\na.png,hi\n")
    with pytest.raises(DatasetError, match=r"line 2: no image column.*image, image_path"):
        load_manifest("csv", table)
    table.write_text("image,words\na.png,hi\n")
    with pytest.raises(DatasetError, match="no caption column"):
        load_manifest("csv", table)
    table.write_text("image,caption\n")
    with pytest.raises(DatasetError, match="no images found"):
        load_manifest("csv", table)
    table.write_text("image,caption\na.png,hi\n")
    with pytest.raises(UsageError, match="no 'split' column"):
        load_manifest("csv", table, "train")
    (tmp_path / "u.csv").write_text("image,caption\n")
    with pytest.raises(DatasetError, match=r"exactly one \.csv/\.tsv file .*found t\.csv, u\.csv"):
        load_manifest("csv", tmp_path)


def test_jsonl(tmp_path):
    table = tmp_path / "d.jsonl"
    lines = [
        {"image": "a.png", "captions_ignored": 1, "text": ["a one", "a two"], "category": "cat"},
        {},
        {"image": "b.png", "text": "b one", "lighting": "dark"},
    ]
    table.write_text("\n".join(json.dumps(x) if x else "" for x in lines) + "\n")
    m = load_manifest("jsonl", tmp_path)
    assert [(r.id, r.captions, r.primary) for r in m.records] == [
        ("a.png", ["a one", "a two"], "cat"),
        ("b.png", ["b one"], None),
    ]
    assert m.records[0].attributes == {"captions_ignored": "1"}
    assert m.attribute_columns() == {"captions_ignored": ["1", ""], "lighting": ["", "dark"]}
    table.write_text('{"image": "a.png", "text": "ok"}\n{"image": "b.png", "text": }\n')
    with pytest.raises(DatasetError, match=r"malformed JSON in .*d\.jsonl at line 2"):
        load_manifest("jsonl", table)


# ---- imagefolder ----------------------------------------------------------------------


def test_imagefolder(tmp_path):
    root = tmp_path / "pets"
    png(root / "golden_retriever" / "2.png")
    png(root / "golden_retriever" / "1.JPG")
    png(root / "cat" / "nested" / "3.webp")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "empty_class").mkdir()
    m = load_manifest("imagefolder", root)
    assert (m.split, m.category_names) == ("pets", ["cat", "golden_retriever"])
    assert [(r.id, r.primary, r.captions) for r in m.records] == [
        ("cat/nested/3.webp", "cat", ["a photo of a cat."]),
        ("golden_retriever/1.JPG", "golden_retriever", ["a photo of a golden retriever."]),
        ("golden_retriever/2.png", "golden_retriever", ["a photo of a golden retriever."]),
    ]
    assert m.prompt_templates == ["a photo of a {}."]
    two = load_manifest("imagefolder", root, templates=["a photo of a {}.", "art of the {}."])
    assert two.records[0].captions == ["a photo of a cat.", "art of the cat."]
    from_cli = load_manifest("imagefolder", root, templates="a photo of a {}.|art of the {}.")
    assert (
        from_cli.prompt_templates == two.prompt_templates == ["a photo of a {}.", "art of the {}."]
    )
    with pytest.raises(UsageError, match="containing"):
        load_manifest("imagefolder", root, templates=["no slot"])
    with pytest.raises(UsageError, match="braces other than"):
        load_manifest("imagefolder", root, templates="a {} of {kind}")


def test_imagefolder_splits(tmp_path):
    root = tmp_path / "ds"
    png(root / "train" / "a" / "1.png")
    png(root / "train" / "b" / "2.png")
    png(root / "val" / "a" / "3.png")
    m = load_manifest("imagefolder", root, "val")
    assert [(r.path, r.primary) for r in m.records] == [("val/a/3.png", "a")]
    assert m.split == "val"
    with pytest.raises(UsageError, match=r"holds splits \(train, val\)"):
        load_manifest("imagefolder", root)
    with pytest.raises(UsageError, match="available splits: train, val"):
        load_manifest("imagefolder", root, "test")
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        load_manifest("imagefolder", tmp_path / "none")


# ---- detection ------------------------------------------------------------------------


def test_detect_each_layout(tmp_path):
    fake_coco(tmp_path / "all" / "coco", "train2017")
    fake_coco(tmp_path / "all" / "coco", "val2017")
    fake_karpathy(tmp_path / "all" / "f30k")
    fake_nocaps(tmp_path / "all" / "nocaps")
    png(tmp_path / "all" / "pets" / "cat" / "1.png")
    png(tmp_path / "all" / "pets" / "dog" / "2.png")
    png(tmp_path / "all" / "inet" / "train" / "fish" / "1.png")
    png(tmp_path / "all" / "inet" / "val" / "fish" / "2.png")
    png(tmp_path / "all" / "inet" / "val" / "bird" / "3.png")
    (tmp_path / "all" / "mine.jsonl").write_text('{"image": "a.png", "text": "t"}\n')

    found = {(d.kind, d.root.name): d for d in detect_dataset(tmp_path / "all")}
    assert set(found) == {
        ("coco", "coco"),
        ("flickr30k", "f30k"),
        ("nocaps", "nocaps"),
        ("imagefolder", "pets"),
        ("imagefolder", "inet"),
        ("jsonl", "mine.jsonl"),
    }
    coco = found["coco", "coco"]
    assert (coco.splits, coco.n_images, coco.n_captions) == (["train2017", "val2017"], 6, 8)
    assert coco.per_split == {"train2017": (3, 4), "val2017": (3, 4)}
    f30k = found["flickr30k", "f30k"]
    assert f30k.per_split == {"test": (2, 3), "train": (1, 1), "val": (1, 1)}
    assert found["nocaps", "nocaps"].per_split == {"test": (1, 0), "val": (2, 3)}
    assert (found["imagefolder", "pets"].splits, found["imagefolder", "pets"].n_images) == ([], 2)
    assert found["imagefolder", "inet"].per_split == {"train": (1, 1), "val": (2, 2)}
    assert all(d.problem == "" for d in found.values())

    (jsonl,) = detect_dataset(tmp_path / "all" / "mine.jsonl")
    assert (jsonl.kind, jsonl.n_images, jsonl.n_captions) == ("jsonl", 1, 1)
    by_file = detect_dataset(tmp_path / "all" / "coco" / "annotations" / "captions_val2017.json")
    assert [(d.kind, d.root.name) for d in by_file] == [("coco", "coco")]
    assert detect_dataset(tmp_path / "missing") == []


def test_detect_reports_problems(tmp_path):
    root = fake_coco(tmp_path / "coco")
    (root / "annotations" / "captions_val2017.json").write_text("{")
    (d,) = detect_dataset(root)
    assert (d.kind, d.n_images) == ("coco", 0)
    assert "malformed JSON" in d.problem and "\n" not in d.problem


def test_detect_tiny_coco_from_its_parent(tiny_coco):
    found = detect_dataset(tiny_coco.parent)
    coco = [d for d in found if d.kind == "coco"]
    assert [(d.root, d.splits, d.n_images, d.n_captions) for d in coco] == [
        (tiny_coco, ["train2017"], 50, 250)
    ]
    assert [d.kind for d in found] == ["coco"]


# ---- the real CLI ---------------------------------------------------------------------


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    root = fake_coco(tmp / "coco")
    broken = fake_coco(tmp / "broken")
    (broken / "annotations" / "captions_val2017.json").write_text('{"images": [\n,]}')
    (tmp / "no_ann").mkdir()
    (tmp / "empty.csv").write_text("image,caption\n")
    return {
        "missing root": (["coco", str(tmp / "nowhere")], "does not exist"),
        "missing annotations": (["coco", str(tmp / "no_ann")], "captions_val2017.json"),
        "malformed json": (["coco", str(broken)], "malformed JSON in"),
        "unknown split": (["coco", str(root), "--split", "nope"], "available splits: val2017"),
        "empty dataset": (["csv", str(tmp / "empty.csv")], "no images found"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing root",
        "missing annotations",
        "malformed json",
        # each run pays the CLI's start-up; these two are covered by load_manifest above
        pytest.param("unknown split", marks=pytest.mark.slow),
        pytest.param("empty dataset", marks=pytest.mark.slow),
    ],
)
def test_cli_bad_dataset_is_one_line(cli, tmp_path, case):
    (kind, root, *rest), expected = _bad_inputs(tmp_path)[case]
    result = cli(
        "extract",
        "--model",
        "open_clip:ViT-B-32@random",
        "--dataset",
        kind,
        "--data-root",
        root,
        *rest,
        "--out",
        str(tmp_path / "out.h5"),
    )
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mgap: error: ") and expected in lines[0]
    assert not (tmp_path / "out.h5").exists()


def test_limit_keeps_every_manifest_field():
    """--limit must not drop prompts, display names or a subclass's own fields."""
    import numpy as np

    full = load_manifest("synthetic", None, "test")
    cut = load_manifest("synthetic", None, "test", limit=3)
    assert type(cut) is type(full) and len(cut.records) == 3
    assert cut.label_prompts == full.label_prompts and cut.prompt_templates == full.prompt_templates
    np.testing.assert_array_equal(np.asarray(cut.load_image(0)), np.asarray(full.load_image(0)))
