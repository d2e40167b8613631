"""ViLT (`hf:dandelin/vilt-b32-mlm`, `hf:dandelin/vilt-b32-finetuned-coco`, a local folder).

ViLT is single-stream: image patches and text tokens go through one transformer, so it has
no separate towers. mgap defines its two embeddings as (both L2-normalised):

- image: the mean of the final states of the image's real patch tokens (padding and the
  image [CLS] excluded) from a pass whose text is empty (`[CLS] [SEP]`);
- text: the mean of the final states of the caption's tokens (padding excluded) from a pass
  with a null image: a single zero image token that is masked out, so no text token sees
  any image.

Image-text scores come from the retrieval head, `rank_output(pooler(h[CLS]))` of
`ViltForImageAndTextRetrieval`, one forward pass per (image, text) pair. Checkpoints
without that head (the MLM or VQA ones) embed but refuse to score, because the head would
be random.

Every image is padded to one fixed canvas (the largest the processor can output), with its
pixel mask, so batches collate; the model drops the padded patches. All real patches are
kept (`max_image_length = -1`, no patch sampling), so an image's embedding does not depend
on the batch. Each image's patch grid is read from its own pixel mask and the config's
`patch_size`, never assumed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.core.errors import UsageError
from mgap.engine.models.base import EmbeddingModel
from mgap.engine.models.hf_parts import (
    PRECISIONS,
    check_options,
    image_processing_record,
    refuse_random_heads,
    torch_dtype,
    weights_record,
)
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch

ARCHITECTURE = "ViltForImageAndTextRetrieval"
#: the encoder every embedding needs; any of it missing means random values
ENCODER_WEIGHTS = ("vilt.embeddings.", "vilt.encoder.", "vilt.layernorm.")
#: the image-text retrieval head scores need
RETRIEVAL_WEIGHTS = ("vilt.pooler.", "rank_output.")
RETRIEVAL_CHECKPOINT = "hf:dandelin/vilt-b32-finetuned-coco"
#: ViltImageProcessor caps the longer edge at shortest_edge * 1333 / 800
MAX_LONGER, MAX_SHORTER = 1333, 800
OPTIONS = {"precision": PRECISIONS}


def canvas_side(image_processor: Any) -> int:
    """The largest edge the processor can output: every image fits a square of this side."""
    size = dict(getattr(image_processor, "size", None) or {})
    if "shortest_edge" not in size:
        raise UsageError(
            f"ViLT image processor size {size} has no shortest_edge",
            hint="use the checkpoint's own preprocessor_config.json",
        )
    longer = int(MAX_LONGER / MAX_SHORTER * int(size["shortest_edge"]))
    divisor = int(getattr(image_processor, "size_divisor", None) or 1)
    return longer // divisor * divisor


class ViltImagePreprocess:
    """PIL image -> {"pixel_values": (3, S, S), "pixel_mask": (S, S)} on a fixed canvas of side
    S (zeros and mask 0 outside the image), so images of any shape collate; picklable."""

    def __init__(self, image_processor: Any, side: int) -> None:
        self.image_processor = image_processor
        self.side = side

    def __call__(self, image: Any) -> dict[str, torch.Tensor]:
        import torch

        out = self.image_processor(images=image.convert("RGB"), return_tensors="pt")
        pixels = out["pixel_values"][0]
        height, width = pixels.shape[-2:]
        canvas = torch.zeros((3, self.side, self.side), dtype=pixels.dtype)
        canvas[:, :height, :width] = pixels
        mask = torch.zeros((self.side, self.side), dtype=torch.long)
        mask[:height, :width] = 1
        return {"pixel_values": canvas, "pixel_mask": mask}


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Loading an MLM checkpoint into the retrieval class lists its missing head; we report
    that ourselves (only when a score is asked for), so the library's notice is muted."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


class VisualTokens:
    """The image half of a ViLT input: embedded tokens (image [CLS] first), their mask and
    each token's (row, col) on its image's own patch grid."""

    def __init__(self, embeds: torch.Tensor, mask: torch.Tensor, patch_index: torch.Tensor):
        self.embeds = embeds
        self.mask = mask
        self.patch_index = patch_index


class ViltAdapter(EmbeddingModel):
    family = "vilt"
    embedding_image = (
        "mean of the final states of the real image patch tokens (padding and image [CLS] "
        "excluded), pass with empty text, L2-normalised"
    )
    embedding_text = (
        "mean of the final states of the caption tokens (padding excluded), pass with a null "
        "image (one masked zero image token), L2-normalised"
    )

    def __init__(
        self,
        spec: ModelSpec,
        device: str,
        *,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        folder: Path,
        missing_retrieval: list[str],
    ) -> None:
        super().__init__(spec, device)
        self.model = model
        self.vilt = model.vilt
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.folder = folder
        self.missing_retrieval = missing_retrieval
        self.dtype = next(model.parameters()).dtype
        self.max_length = int(model.config.max_position_embeddings)
        self.patch_size = int(model.config.patch_size)
        self.side = canvas_side(image_processor)

    # ---- inputs ----------------------------------------------------------------------
    def image_preprocess(self) -> ViltImagePreprocess:
        return ViltImagePreprocess(self.image_processor, self.side)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        self.tokenizer.padding_side = "right"  # absolute positions of the real tokens
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)

    def visual_tokens(self, batch: dict[str, torch.Tensor]) -> VisualTokens:
        """All real patches of every image (no sampling), deterministic token order."""
        import torch

        pixels = batch["pixel_values"].to(self.device, self.dtype)
        pixel_mask = batch["pixel_mask"].to(self.device)
        # visual_embed shuffles the tokens of the largest image with torch.multinomial; the
        # result does not depend on the order, but a fixed seed keeps runs bit-identical
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            embeds, mask, (patch_index, _) = self.vilt.embeddings.visual_embed(
                pixels, pixel_mask, max_image_length=-1
            )
        return VisualTokens(embeds, mask, patch_index)

    def forward(
        self,
        tokens: dict[str, torch.Tensor],
        visual: VisualTokens,
        *,
        output_attentions: bool = False,
    ) -> Any:
        """One pass of text tokens + visual tokens; image tokens follow the text tokens."""
        return self.vilt(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            token_type_ids=tokens.get("token_type_ids"),
            image_embeds=visual.embeds,
            pixel_mask=visual.mask,
            output_attentions=output_attentions,
        )

    def empty_text(self, n: int) -> dict[str, torch.Tensor]:
        return self.tokenize([""] * n)

    # ---- embeddings --------------------------------------------------------------------
    def encode_images(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        import torch

        visual = self.visual_tokens(batch)
        tokens = self.empty_text(visual.embeds.shape[0])
        hidden = self.forward(tokens, visual).last_hidden_state
        patches = hidden[:, tokens["input_ids"].shape[1] + 1 :].float()
        keep = visual.mask[:, 1:].to(patches.dtype).unsqueeze(-1)
        mean = (patches * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(mean, dim=-1)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        import torch

        tokens = self.tokenize(texts)
        n = tokens["input_ids"].shape[0]
        hidden_size = int(self.model.config.hidden_size)
        null = VisualTokens(
            torch.zeros((n, 1, hidden_size), device=self.device, dtype=self.dtype),
            torch.zeros((n, 1), device=self.device, dtype=torch.long),
            torch.zeros((n, 1, 2), device=self.device, dtype=torch.long),
        )
        hidden = self.forward(tokens, null).last_hidden_state
        text = hidden[:, : tokens["input_ids"].shape[1]].float()
        keep = tokens["attention_mask"].to(text.dtype).unsqueeze(-1)
        mean = (text * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(mean, dim=-1)

    # ---- image-text scores -------------------------------------------------------------
    def check_retrieval_head(self) -> None:
        """Refuse to score with a head that would be random (MLM and VQA checkpoints)."""
        refuse_random_heads(
            self.spec,
            self.missing_retrieval,
            RETRIEVAL_WEIGHTS,
            what="image-text retrieval head",
            hint=f"scores need a ViLT retrieval checkpoint such as {RETRIEVAL_CHECKPOINT}",
        )

    def score_image(self, image: dict[str, torch.Tensor], texts: Sequence[str]) -> torch.Tensor:
        """Retrieval-head logits (len(texts),) of one image (a batch of one) with each text."""
        self.check_retrieval_head()
        visual = self.visual_tokens(image)
        n = len(texts)
        repeated = VisualTokens(
            visual.embeds.expand(n, -1, -1),
            visual.mask.expand(n, -1),
            visual.patch_index.expand(n, -1, -1),
        )
        pooled = self.forward(self.tokenize(texts), repeated).pooler_output
        return self.model.rank_output(pooled)[:, 0].float()

    def provenance(self) -> dict[str, object]:
        return {
            "weights": weights_record(self.spec, self.folder, type(self.model).__name__),
            "retrieval_head": "absent (scores refused)" if self.missing_retrieval else "loaded",
            "preprocessing": {
                "image": {
                    **image_processing_record(self.image_processor),
                    "canvas": [self.side, self.side],
                    "patch_size": self.patch_size,
                    "max_image_length": -1,
                },
                "text": {
                    "tokenizer": type(self.tokenizer).__name__,
                    "padding": "longest, right",
                    "truncation": True,
                    "max_length": self.max_length,
                },
            },
            "precision": str(self.dtype).removeprefix("torch."),
        }


def load_vilt(spec: ModelSpec, folder: Path, device: str, **options: object) -> ViltAdapter:
    """Load any ViLT checkpoint folder; its encoder must be real, its retrieval head may not."""
    from transformers import AutoImageProcessor, AutoTokenizer, ViltForImageAndTextRetrieval

    opts = check_options(spec, options, OPTIONS)
    dtype = torch_dtype(device, opts.get("precision"), gpu_default="float16")
    with _quiet_transformers():
        model, info = ViltForImageAndTextRetrieval.from_pretrained(
            folder, dtype=dtype, output_loading_info=True
        )
    missing = list(info["missing_keys"])
    refuse_random_heads(
        spec,
        missing,
        ENCODER_WEIGHTS,
        what="ViLT encoder weights",
        hint="give a ViLT checkpoint such as hf:dandelin/vilt-b32-mlm",
    )
    return ViltAdapter(
        spec,
        device,
        model=model.to(device).eval(),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        image_processor=AutoImageProcessor.from_pretrained(folder),
        folder=Path(folder),
        missing_retrieval=sorted(k for k in missing if k.startswith(RETRIEVAL_WEIGHTS)),
    )
