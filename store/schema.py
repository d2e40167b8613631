"""The one place that names every object in an mgap store (HDF5).

A store holds one (dataset, split, model). Its layout:

    /                              attributes: provenance (PROVENANCE_KEYS) and `status`
    /images/ids            (N,)    str    dataset image id, unique
    /images/paths          (N,)    str    path relative to the data root ("" for generated images)
    /images/valid          (N,)    uint8  1 = embedded, 0 = skipped or not reached yet
    /images/embeddings     (N, d)  float16|float32   (absent for text-only models)
    /images/primary        (N,)    int32  index into /categories/names, -1 = none
    /images/labels         (N, C)  uint8  multi-hot category labels
    /images/attributes/<k> (N,)    str    optional per-image attributes (colour, size, ...)
    /images/perturbed/<setting>/embeddings (N, d)  the image side of a perturbed copy of each
                                   image (`mgap extract --perturb`); <setting> is its command-line
                                   name (noise:0.05, blur:3, occlude:64). Rows match /images/ids,
                                   share /images/valid and are written in the same block as the
                                   clean rows, before /progress counts them. The root attribute
                                   `perturbations` lists the settings (JSON), `perturb_seed`
                                   their seed. The text side and prompts are embedded once.
    /texts/captions        (M,)    str
    /texts/image_row       (M,)    int64  the image row of each caption
    /texts/embeddings      (M, d)  float16|float32   (absent for image-only models)
    /categories/names      (C,)    str
    /categories/supercategories (C,) str  ("" when the dataset has none)
    /prompts/<set>/names   (K,)    str    zero-shot classes: <set> is "category" or an attribute key
    /prompts/<set>/embeddings (K, d) float32  mean of the L2-normalised prompt embeddings
    /progress              (2,)    int64  [image rows done, text rows done], in row order
    /skipped/ids, /skipped/reasons (S,) str  written when the run finishes or stops
    /checksums/<dataset>   (B,)    uint32 CRC32 of each written block of <dataset> (`/` -> `.`)

Why this shape: everything known before the first forward pass (ids, captions,
categories) is written when the store is created, and the embedding arrays are
contiguous and allocated up front. During extraction only raw rows and /progress are
written, at fixed offsets, in blocks of BLOCK_ROWS, so a SIGKILL at any moment cannot
corrupt HDF5 metadata and loses at most the block in flight. Each block's CRC32 (see
`store.checksum`) is written with the block, before /progress, so `mgap verify` can tell
a flipped bit from a real value. A store is self-contained: no external storage, external
or soft links (see `store.contained`). Derived results
(projections, kNN graphs) live in a sidecar cache file (see `store.cache`).
"""

from __future__ import annotations

#: 2 added /checksums; version-1 stores are still read (and verified without checksums).
SCHEMA_VERSION = 2

#: Default rows per write: extraction writes rows [k*B, (k+1)*B) at once. A store records
#: its own B in the `block_rows` attribute (smaller blocks lose less to a kill).
BLOCK_ROWS = 256
#: Upper bound for `block_rows`: a block is buffered in memory by the extraction.
MAX_BLOCK_ROWS = 65536

IMAGE_IDS = "images/ids"
IMAGE_PATHS = "images/paths"
IMAGE_VALID = "images/valid"
IMAGE_EMB = "images/embeddings"
IMAGE_PRIMARY = "images/primary"
IMAGE_LABELS = "images/labels"
IMAGE_ATTRS = "images/attributes"
IMAGE_PERTURBED = "images/perturbed"
TEXT_CAPTIONS = "texts/captions"
TEXT_IMAGE_ROW = "texts/image_row"
TEXT_EMB = "texts/embeddings"
CATEGORY_NAMES = "categories/names"
CATEGORY_SUPER = "categories/supercategories"
PROGRESS = "progress"
PROMPTS = "prompts"
PROMPT_SET_CATEGORY = "category"
SKIPPED_IDS = "skipped/ids"
SKIPPED_REASONS = "skipped/reasons"
CHECKSUMS = "checksums"


def checksum_name(dataset: str) -> str:
    """The /checksums dataset that holds the per-block CRC32s of `dataset`."""
    return f"{CHECKSUMS}/{dataset.replace('/', '.')}"


STATUS_PARTIAL = "partial"
STATUS_COMPLETE = "complete"
STATUS_FAILED = "failed"
STATUSES = (STATUS_PARTIAL, STATUS_COMPLETE, STATUS_FAILED)

GEOMETRY_EUCLIDEAN = "euclidean"
GEOMETRY_LORENTZ = "lorentz"

#: Root attributes. All are strings or numbers; `library_versions` is a JSON object.
PROVENANCE_KEYS = (
    "schema_version",
    "mgap_version",
    "status",
    "model",  # the model spec as given, e.g. open_clip:ViT-B-32@openai
    "family",  # open_clip, hf_clip, siglip, blip, blip2, llava, sentence, vision, toy, imported
    "weights",  # resolved weights: pretrained tag, hub revision, local folder, or "random(seed=0)"
    "embedding_image",  # which tensor is the image embedding (docs/design.md §8), "" if none
    "embedding_text",
    "preprocessing",
    "precision",  # storage dtype: float16 or float32
    "block_rows",
    "compute_dtype",
    "device",
    "batch_size",
    "dataset",
    "split",
    "data_root",
    "annotation_sha256",
    "rows_sha256",  # SHA-256 of the rows (ids, paths, captions, labels): checked on resume
    "resumes",  # JSON list: when each resume started, its batch size and the rows done then
    "library_versions",
    "command",
    "created",
    "finished",
    "geometry",  # euclidean, or lorentz for hyperbolic (MERU-style) embeddings
    "curvature",
    "perturbations",  # JSON list of perturbation settings stored beside the clean side
    "perturb_seed",
)


#: the name of the unperturbed image side beside the perturbation settings
CLEAN = "clean"


def perturbed_embeddings(setting: str) -> str:
    """The dataset holding the image side of one perturbation setting."""
    return f"{IMAGE_PERTURBED}/{setting}/embeddings"
