"""The side-by-side pictures of evaluate (`metrics/crops/`): HR | bicubic | SRCNN on the image's most
detailed window, labelled and enlarged so pixels stay visible."""

from __future__ import annotations

import cv2
import numpy as np

PICTURE_SIDE = 96  # side of the window shown, in HR pixels
ZOOM = 3  # nearest-neighbour enlargement of the crops, so pixels stay visible


def detail_window(image: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the side×side window with the most edge energy (deterministic)."""
    h, w = image.shape
    energy = np.abs(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F))
    integral = cv2.integral(energy)
    step = max(1, side // 4)
    best, corner = -1.0, (0, 0)
    for top in range(0, h - side + 1, step):
        for left in range(0, w - side + 1, step):
            total = (
                integral[top + side, left + side]
                - integral[top, left + side]
                - integral[top + side, left]
                + integral[top, left]
            )
            if total > best:
                best, corner = total, (top, left)
    return corner


def side_by_side(panels: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Horizontally joined, labelled, zoomed 8-bit crops."""
    tiles = []
    for label, crop in panels:
        big = cv2.resize(crop, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST)
        header = np.full((26, big.shape[1]), 255, np.uint8)
        cv2.putText(header, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
        tile = np.vstack([header, big])
        tiles.append(np.pad(tile, ((0, 0), (0, 4)), constant_values=255))
    return np.hstack(tiles)[:, :-4]


def comparison(label: np.ndarray, bicubic: np.ndarray, sr: np.ndarray, psnr_bicubic: float, psnr_srcnn: float):
    """The (26 + 3·side, 3·(3·side) + 8) uint8 picture HR | bicubic | SRCNN of three same-size 8-bit Y images, on
    the HR image's most detailed `PICTURE_SIDE`-pixel window (smaller for a smaller image), PSNRs in dB."""
    side = min(PICTURE_SIDE, *label.shape)
    top, left = detail_window(label, side)
    window = np.s_[top : top + side, left : left + side]
    return side_by_side(
        [
            ("HR", label[window]),
            (f"bicubic {psnr_bicubic:.2f} dB", bicubic[window]),
            (f"SRCNN {psnr_srcnn:.2f} dB", sr[window]),
        ]
    )
