"""Opening one image's bytes as RGB, shared by the datasets and the extraction decoders."""

from __future__ import annotations

import io


def open_rgb(data: bytes, draft_to: int | None = None):
    """Decode `data` to an RGB PIL image; with `draft_to`, a JPEG at least twice that size
    on its shortest side is decoded at a reduced DCT scale, never below `draft_to`."""
    from PIL import Image, UnidentifiedImageError

    try:
        opened = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        # PIL's own message names the in-memory buffer (`<_io.BytesIO object at 0x...>`),
        # which would make identical runs store different skip reasons
        what = "an empty file" if not data else f"{len(data)} bytes in no image format PIL reads"
        raise UnidentifiedImageError(f"cannot identify the image: {what}") from None
    with opened as img:
        if draft_to and img.format == "JPEG" and min(img.size) >= 2 * draft_to:
            scale = draft_to / min(img.size)
            img.draft("RGB", (int(img.width * scale + 0.999), int(img.height * scale + 0.999)))
        return img.convert("RGB")
