"""Row bands: how an image too big to process whole is processed in bounded memory.

Per-pixel work (colour conversion, rounding) and separable resampling (`srcnn.data.resize.banded_resize`) are done
band by band, each band's temporaries (float64 planes) sized by `BAND_PIXELS`, not by the image: the patches
stage's peak memory is then the uint8/uint16 images it keeps plus a few bands, at any image size. Every band
gives the bytes the whole image would (each output pixel's sum is the same terms in the same order).
"""

from __future__ import annotations

from collections.abc import Iterator

BAND_PIXELS = 1 << 21  # pixels per band: one float64 plane of a band is 16 MiB, whatever the image's size


def row_bands(height: int, width: int, pixels: int | None = None) -> Iterator[tuple[int, int]]:
    """(start, stop) row ranges covering `height` rows in order, each of about `pixels` (default `BAND_PIXELS`)
    pixels of a `width`-wide image, and at least one row."""
    rows = max(1, (BAND_PIXELS if pixels is None else pixels) // max(1, width))
    for start in range(0, height, rows):
        yield start, min(start + rows, height)
