"""The text side of classification stores: one text per class, not one copy per image.

Image-folder and zero-shot style stores caption every image with its class prompt(s), so
each prompt is stored once per image. Counted per row, those copies pull the intra-text
cosine towards 1 and weight L2M by class size. "Two Effects, One Trigger" (`compute_l2m`,
`compute_l2i`, `compute_rmg` on ImageNet) uses the unique class prompts instead: L2M and
the intra-text cosine run over one text per class, and each image pairs with its class's
text. With several templates per class, the class text is the mean of the class's
normalised template embeddings (the zero-shot classifier of CLIP), re-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgap.engine.measures.gap import gap_vector, intra_cosine, metrics_dict
from mgap.engine.measures.rows import unit_rows


@dataclass(frozen=True)
class ClassLayout:
    """Which caption rows are which class's prompts."""

    classes: np.ndarray  # (K,) category ids that have texts, ascending
    image_class: np.ndarray  # (N,) position in `classes` of each image's class
    text_class: np.ndarray  # (M,) position in `classes` of each caption row's class
    text_code: np.ndarray  # (M,) id of each caption row's distinct text
    n_texts: int  # distinct texts (prompts) over all classes
    templates_per_class: int  # most distinct texts of one class


def classification_layout(
    captions: np.ndarray, text_image_index: np.ndarray, primary: np.ndarray
) -> ClassLayout | None:
    """The layout when every image's captions are exactly its class's prompts (the same texts
    for all images of a class, no text shared by two classes, some text repeated); else None."""
    captions = np.asarray(captions)
    index = np.asarray(text_image_index, dtype=np.int64)
    primary = np.asarray(primary, dtype=np.int64)
    if (
        captions.size == 0
        or (primary < 0).any()
        or not _first_class_repeats(captions, index, primary)
    ):
        return None
    codes, text_code = np.unique(captions, return_inverse=True)
    n_codes = codes.size
    if n_codes == captions.size:  # nothing repeats: ordinary captions
        return None
    text_cat = primary[index]
    code_cat = np.full(n_codes, -1, dtype=np.int64)
    code_cat[text_code] = text_cat
    if not np.array_equal(code_cat[text_code], text_cat):  # a text used by two classes
        return None
    if np.unique(index * n_codes + text_code).size != captions.size:  # a text twice on an image
        return None
    texts_of_cat = np.bincount(code_cat, minlength=primary.max() + 1)
    per_image = np.bincount(index, minlength=primary.size)
    if not np.array_equal(per_image, texts_of_cat[primary]):  # an image lacks a class prompt
        return None
    classes = np.flatnonzero(texts_of_cat)
    position = np.full(texts_of_cat.size, -1, dtype=np.int64)
    position[classes] = np.arange(classes.size)
    return ClassLayout(
        classes=classes,
        image_class=position[primary],
        text_class=position[text_cat],
        text_code=text_code,
        n_texts=int(n_codes),
        templates_per_class=int(texts_of_cat.max()),
    )


def _first_class_repeats(captions: np.ndarray, index: np.ndarray, primary: np.ndarray) -> bool:
    """Cheap necessary condition, checked before sorting every caption: the first two images
    of the first class with two images carry the same texts (True when no class has two)."""
    counts = np.bincount(primary)
    repeated = np.flatnonzero(counts >= 2)
    if repeated.size == 0:
        return True
    first, second = np.flatnonzero(primary == repeated[0])[:2]
    return sorted(captions[index == first]) == sorted(captions[index == second])


def class_texts(Y: np.ndarray, layout: ClassLayout) -> np.ndarray:
    """(K, d) one unit text per class: the mean of its distinct normalised prompts."""
    Yn = unit_rows(Y)
    d = Yn.shape[1]
    per_code = np.zeros((layout.n_texts, d))
    np.add.at(per_code, layout.text_code, Yn)  # copies of one prompt: average them
    per_code = unit_rows(per_code)
    code_class = np.zeros(layout.n_texts, dtype=np.int64)
    code_class[layout.text_code] = layout.text_class
    per_class = np.zeros((layout.classes.size, d))
    np.add.at(per_class, code_class, per_code)
    return unit_rows(per_class)


def class_gap_metrics(
    X: np.ndarray,
    T: np.ndarray,
    image_class: np.ndarray,
    *,
    top_k: int = 10,
    separability: bool = False,
) -> dict:
    """The gap metrics of images X against unique class texts T, image i paired with
    T[image_class[i]]: the same keys as `gap_metrics`, n_texts = number of class texts."""
    Xn, Tn = unit_rows(X), unit_rows(T)
    partner = Tn[image_class]
    cos = np.einsum("ij,ij->i", Xn, partner)
    dist = np.linalg.norm(Xn - partner, axis=1)
    delta = gap_vector(Xn, Tn)
    intra_image, intra_text = intra_cosine(Xn), intra_cosine(Tn)
    sizes = (X.shape[0], T.shape[0], X.shape[1])
    out = metrics_dict(
        sizes, delta, (float(cos.mean()), float(dist.mean())), (intra_image, intra_text), top_k
    )
    if separability:
        from mgap.engine.measures.separability import modality_separability

        out["separability"] = modality_separability(Xn, Tn)
    return out
