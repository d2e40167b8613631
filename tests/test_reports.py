"""Typed reports: every `--json` command's output has its report type's shape and schema.

Each command runs for real on small stores; its document must validate against the
JSON Schema `mgap schema COMMAND` prints, read into the report dataclass and write back
the same document, and the typed fields must hold the document's values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import jsonschema
import numpy as np
import pytest

from mgap.engine.reports import REPORTS, ReportShapeError, json_schema
from mgap.engine.reports.analysis import GapReport, KnnReport, Recall


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from mgap.store.build import store_from_arrays

    root = tmp_path_factory.mktemp("stores")
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a", "b"):
        primary = np.arange(60) % 3
        X = rng.normal(size=(60, 8)) + np.eye(8)[primary] * 2
        rows = np.repeat(np.arange(60), 2)
        paths.append(
            store_from_arrays(
                root / f"{name}.h5",
                image_embeddings=X,
                text_embeddings=X[rows] + rng.normal(size=(120, 8)) * 0.5 + np.eye(8)[7],
                image_ids=[f"img{j}" for j in range(60)],
                captions=[f"caption {j}" for j in range(120)],
                caption_image_row=rows,
                category_names=["cat", "dog", "car"],
                supercategories=["animal", "animal", "vehicle"],
                primary=primary,
                labels=np.eye(3, dtype=bool)[primary],
                prompts={"category": (["cat", "dog", "car"], rng.normal(size=(3, 8)))},
                provenance={"model": f"toy:{name}", "dataset": "synthetic", "split": "test"},
            )
        )
    return paths


#: commands whose documents other tests validate against their schema as they run them:
#: extract (conftest's extract_cli), models (test_models_cmd), demo (test_demo), robustness,
#: object-bias, plot, traverse (test_robustness, test_object_bias, test_plots,
#: test_hyperbolic_cli, through conftest's check_schema), attention and itm (the slow CLI
#: tests of test_attention and test_itm)
VALIDATED_ELSEWHERE = {
    "compare",  # tests/test_compare.py, through conftest's check_schema
    "extract",
    "models",
    "demo",
    "robustness",
    "object-bias",
    "plot",
    "traverse",
    "attention",
    "itm",
    "train-toy",  # below, in both of its modes
}


def _arguments(command: str, a, b) -> list[str]:
    return {
        "gap": ["gap", str(a), "--by-category"],
        "retrieval": ["retrieval", str(a), "--by-category"],
        "examples": ["examples", str(a), "--k", "3"],
        "zeroshot": ["zeroshot", str(a)],
        "neighbours": ["neighbours", str(a)],
        "experiment shift": ["experiment", "shift", str(a), "--lambdas=0,1"],
        "experiment ablate": ["experiment", "ablate", str(a), "--k-max", "2"],
        "experiment center": ["experiment", "center", str(a), "--groups", "category"],
        "cka": ["cka", str(a), str(b)],
        "knn": ["knn", str(a), str(b)],
        "match": ["match", str(a), str(b), "--base", "20", "--query", "20"],
        "info": ["info", str(a)],
        "ls": ["ls", "--store-dir", str(a.parent)],
    }[command]


def test_every_command_with_a_schema_is_validated_somewhere(tmp_path):
    here = set(_arguments_table(tmp_path, tmp_path))
    assert here | VALIDATED_ELSEWHERE == set(REPORTS)


def _arguments_table(a, b) -> dict[str, list[str]]:
    return {c: _arguments(c, a, b) for c in sorted(set(REPORTS) - VALIDATED_ELSEWHERE)}


@pytest.mark.parametrize("command", sorted(set(REPORTS) - VALIDATED_ELSEWHERE))
def test_json_output_validates_and_round_trips(cli, stores, command):
    done = cli(*_arguments(command, *stores), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    jsonschema.validate(doc, json_schema(REPORTS[command]))
    report = REPORTS[command].from_json(doc)
    assert report.to_json() == doc
    assert list(report.to_json()) == list(doc)  # the document's key order is kept


def test_typed_fields_hold_the_document_values(cli, stores):
    doc = json.loads(cli("gap", str(stores[0]), "--by-category", "--json").stdout)
    report = GapReport.from_json(doc)
    assert (report.l2m, report.rmg, report.dim) == (doc["l2m"], doc["rmg"], doc["dim"])
    assert [r.name for r in report.by_category] == [r["name"] for r in doc["by_category"]]
    assert report.top_dims[0].share == doc["top_dims"][0]["share"]
    assert report.compute.to_json() == doc["compute"]
    assert [r.to_json() for r in report.category_ranking] == doc["category_ranking"]
    pairwise = doc["category_pairwise_distances"]
    assert report.category_pairwise_distances.extra["n_images"] == pairwise["n_images"]  # kept
    side = Recall.from_json({"R@1": 0.5, "R@5": 0.75, "R@10": 1.0})
    assert (side.r1, side.r5, side.r10) == (0.5, 0.75, 1.0)


def test_a_missing_key_is_one_line_naming_it():
    with pytest.raises(ReportShapeError, match="KnnReport: the document has no 'mutual_knn' key"):
        KnnReport.from_json({"names": ["a", "b"], "k": 10, "n": 50})


def test_a_field_added_to_a_report_appears_in_its_schema():
    @dataclass(kw_only=True)
    class Wider(KnnReport):
        interval: list[float] | None = None

    schema = json_schema(Wider)
    assert schema["properties"]["interval"] == {
        "anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "null"}]
    }
    assert "interval" not in schema["required"] and "mutual_knn" in schema["required"]


def test_mgap_schema_prints_the_generated_schema_and_lists_commands(cli):
    done = cli("schema", "experiment", "shift")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json_schema(REPORTS["experiment shift"])
    listing = cli("schema")
    assert listing.stdout.split("\n")[:-1] == sorted(REPORTS)
    bad = cli("schema", "nope")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"mgap: error: no JSON Schema for 'nope'; commands with one: {', '.join(sorted(REPORTS))}"
    ]


@pytest.mark.parametrize(
    "args",
    [["--name", "t"], ["--sweep", "temperature", "--values", "0.1"]],
    ids=["one", "sweep"],
)
def test_train_toy_json_validates_in_both_modes(cli, tmp_path, args):
    budget = ["--epochs", "1", "--n-train", "64"]
    done = cli("train-toy", *args, *budget, "--json", env={"MGAP_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    jsonschema.validate(doc, json_schema(REPORTS["train-toy"]))
    assert REPORTS["train-toy"].variant(doc).__name__ == (
        "ToySweepReport" if "--sweep" in args else "ToyTrainingReport"
    )


def test_build_writes_keys_in_keyword_order_and_leaves_out_optional_fields():
    report = KnnReport.build(names=["a", "b"], k=2, n=5, chance=0.5, mutual_knn=0.25)
    doc = report.to_json()
    assert list(doc) == ["names", "k", "n", "chance", "mutual_knn"]
    assert doc == {"names": ["a", "b"], "k": 2, "n": 5, "chance": 0.5, "mutual_knn": 0.25}
    assert report.cknna is None and report.estimate is None
    assert KnnReport.from_json(doc).to_json() == doc
    with pytest.raises(TypeError):
        KnnReport.build(names=["a", "b"], n=5, mutual_knn=0.25)  # k is required
