"""Where a network's output pixels sit in the HR image: the one description the training loss, the engine's
tiles and the exports share, for networks on the bicubic-upsampled image (SRCNN) and on the LR image
(FSRCNN, ESPCN) alike.

A network's input has `upsample` times fewer pixels per side than the HR image (1: SRCNN's bicubic input;
the scale: an LR input). An input of side n gives an output of side upsample·n − left − right: its first
output pixel is HR pixel `left` of the input's HR grid, and `right` HR pixels at the far end are missing.
Every output pixel is computed from real input pixels only (valid convolutions, no padding).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Geometry:
    upsample: int  # HR pixels per input pixel along each side: 1 (SRCNN) or the scale (LR networks)
    left: int  # HR pixels of the input's grid before the first output pixel (top and left)
    right: int  # HR pixels of the input's grid after the last output pixel (bottom and right)

    def output_side(self, n: int) -> int:
        """Output side in HR pixels of an input of side `n`."""
        return self.upsample * n - self.left - self.right

    @property
    def context(self) -> int:
        """Input pixels a tile must read beyond its own on each side so that its HR pixels are all computed:
        ceil(max(left, right) / upsample)."""
        return -(-max(self.left, self.right) // self.upsample)
