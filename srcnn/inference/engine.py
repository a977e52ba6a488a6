"""The one inference engine: SRCNN run on tiles of any image, whatever runtime computes the network.

Used by the evaluate stage (`upscale_y`, Y only), by `srcnn upscale` (`Upscaler`, full colour), by the export
stage's parity check and by the bench. Every tile is read with the receptive-field radius of context, mirrored
at the image edges as the whole-image computation pads, so results do not depend on the tile size and memory
is bounded by it.

The network itself is a `Network`: TensorFlow's compiled forward pass of a Keras model
(`srcnn.inference.keras_runtime`), or an exported file run by ONNX Runtime, LiteRT or TensorFlow
(`srcnn.inference.runtimes`).
This module imports neither TensorFlow nor any runtime, so `srcnn upscale` with an ONNX model never loads
TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srcnn.data.colour import peak, rgb_to_ycbcr, round_to, ycbcr_to_rgb
from srcnn.data.resize import apply_taps, axis_taps, symmetric_indices
from srcnn.inference.network import Network, geometry_of
from srcnn.nets.geometry import Geometry


def network_of(model, geometry: Geometry | None = None) -> Network:
    """`model` itself when it is a Network; a Keras model's compiled forward pass (built once and kept on it),
    `geometry` that of a network on the LR image (None: SRCNN)."""
    if isinstance(model, Network):
        return model
    from srcnn.inference.keras_runtime import forward  # TensorFlow loads only for a Keras model

    return forward(model, geometry)


def tile_starts(length: int, tile: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive tiles covering [0, length); the last one may be shorter."""
    return [(s, min(s + tile, length)) for s in range(0, length, tile)]


def predict_y(model, y: np.ndarray, tile: int | None = None, overlap: int | None = None) -> np.ndarray:
    """SRCNN on a float Y image in [0, 1] (bicubic-upsampled), float32 of the same size out (unclipped).

    The image is padded symmetrically by the receptive-field radius (its borders see mirrored pixels,
    not zeros) and run through the valid convolutions, whole (`tile=None`) or in `tile`×`tile` output
    tiles, each read with `overlap` pixels of context on every side (mirrored beyond the image edge).
    With overlap ≥ the radius every output pixel sees exactly the pixels it sees in the whole image,
    so the result is the same; memory is bounded by the tile size.
    """
    run = network_of(model)
    if geometry_of(run).upsample > 1:
        raise ValueError("predict_y runs a network on the bicubic image; this one takes the LR image (predict_lr)")
    m = run.margin
    overlap = m if overlap is None else overlap
    if overlap < m:
        raise ValueError(f"overlap {overlap} is smaller than the model's receptive-field radius {m}")
    h, w = y.shape
    tile = max(h, w) if tile is None else tile
    if tile < 1:
        raise ValueError(f"tile must be at least 1 pixel; got {tile}")
    trim = overlap - m  # extra context beyond the radius, cut from the model's output
    if tile >= max(h, w):  # one tile: the whole image, padded in one call (~10× faster than the gather below)
        pred = run(np.pad(np.asarray(y, np.float32), overlap, mode="symmetric")[None, :, :, None])[0, :, :, 0]
        return np.ascontiguousarray(pred[trim : trim + h, trim : trim + w])
    out = np.empty((h, w), np.float32)
    for r0, r1 in tile_starts(h, tile):
        rows = symmetric_indices(np.arange(r0 - overlap, r1 + overlap), h)
        for c0, c1 in tile_starts(w, tile):
            cols = symmetric_indices(np.arange(c0 - overlap, c1 + overlap), w)
            window = np.asarray(np.take(np.take(y, rows, 0), cols, 1), dtype=np.float32)  # ~3× faster than np.ix_
            pred = run(window[None, :, :, None])[0, :, :, 0]
            out[r0:r1, c0:c1] = pred[trim : trim + r1 - r0, trim : trim + c1 - c0]
    return out


def predict_lr(run: Network, y: np.ndarray, tile: int | None = None) -> np.ndarray:
    """A network on the LR image (`run.geometry`: FSRCNN, ESPCN) on a float LR Y image in [0, 1]: float32 HR Y
    of scale × its size out (unclipped).

    The LR image is padded symmetrically by the geometry's `context` (its borders see mirrored pixels) and run
    whole (`tile=None`) or in `tile`×`tile` LR tiles, each read with `context` LR pixels around it (mirrored
    beyond the image edge): every output pixel sees the input pixels it sees in the whole image, so the
    result is the same for any tile; memory is bounded by the tile size."""
    g = geometry_of(run)
    s, c = g.upsample, g.context
    skip = s * c - g.left  # output pixels before the HR grid of the tile itself
    h, w = y.shape
    tile = max(h, w) if tile is None else tile
    if tile < 1:
        raise ValueError(f"tile must be at least 1 pixel; got {tile}")
    out = np.empty((h * s, w * s), np.float32)
    for r0, r1 in tile_starts(h, tile):
        rows = symmetric_indices(np.arange(r0 - c, r1 + c), h)
        for c0, c1 in tile_starts(w, tile):
            cols = symmetric_indices(np.arange(c0 - c, c1 + c), w)
            window = np.asarray(np.take(np.take(y, rows, 0), cols, 1), dtype=np.float32)
            pred = run(window[None, :, :, None])[0, :, :, 0]
            out[r0 * s : r1 * s, c0 * s : c1 * s] = pred[skip : skip + (r1 - r0) * s, skip : skip + (c1 - c0) * s]
    return out


EVALUATE_TILE = 512  # output tiles of upscale_y: the 64-channel activations of a 4080×2712 image would take 2.8 GB


def upscale_y(model, y_input: np.ndarray, tile: int = EVALUATE_TILE, geometry: Geometry | None = None) -> np.ndarray:
    """Run the network on a uint8 or uint16 Y image, in tiles of about `tile`×`tile` output pixels (the result
    does not depend on the tile size; memory does): SRCNN on the bicubic-upsampled Y (Y of the same size out),
    a network on the LR image (`geometry`, or a Network's own) on the LR Y (HR Y out). Y of the input's dtype
    out. The network sees Y / peak (255 or 65535, `srcnn.data.colour.peak`) in [0, 1], as it was trained."""
    top = peak(y_input.dtype)
    run = network_of(model, geometry)
    g = geometry_of(run)
    x = y_input.astype(np.float32) / top
    pred = predict_lr(run, x, max(1, tile // g.upsample)) if g.upsample > 1 else predict_y(run, x, tile=tile)
    return round_to(pred * top, y_input.dtype)


# --------------------------------------------------------------------------- full colour, any image: srcnn upscale


def fill_hidden_colour(image: np.ndarray) -> np.ndarray:
    """`image` with the colour under alpha = 0 replaced by the nearest visible pixel's (Euclidean distance,
    OpenCV's `distanceTransformWithLabels`), so that resampling never bleeds a colour nobody sees (black,
    mostly) into the visible edge as a dark fringe. Costs 8 bytes per input pixel (distances and labels),
    only for an image that has fully transparent pixels. Gray + alpha (h, w, 2) or colour + alpha (h, w, 4), uint8
    or uint16; any other image, or one with no (or only) fully transparent pixels, is returned as it is. The
    alpha plane and every visible pixel are unchanged, so the picture shown is the same.

    Part of `Upscaler.tiles`, the one pixel path of the command, `srcnn.load().upscale` and `upscale_file`."""
    if image.ndim != 3 or image.shape[2] not in (2, 4):
        return image
    hidden = image[..., -1] == 0
    if not hidden.any() or hidden.all():
        return image
    import cv2  # here, so that importing the engine (the evaluate stage's) does not load OpenCV

    _, labels = cv2.distanceTransformWithLabels(
        hidden.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # Each visible (zero) pixel has its own label, 1, 2, … in raster order; a hidden one its nearest's.
    visible = np.flatnonzero(~hidden.ravel())
    out = image.copy()
    flat = out.reshape(-1, image.shape[2])
    hidden_flat = np.flatnonzero(hidden.ravel())
    flat[hidden_flat, :-1] = flat[visible[labels.ravel()[hidden_flat] - 1], :-1]
    return out


@dataclass(frozen=True)
class Upscaler:
    model: object  # a Network, or a Keras model (run through `network_of`)
    scale: int
    resize: str
    tile: int = 512
    bit_depth: int = 8  # of the data the model was trained on (`srcnn.nets.metadata.bit_depth_of`); inputs keep theirs
    geometry: Geometry | None = None  # a Keras model's on the LR image (`srcnn.nets.metadata.geometry_of`)

    def __post_init__(self) -> None:
        # The network through the same compiled forward pass as the evaluate stage (`Forward`), so the
        # figures evaluate reports come from the code users run.
        object.__setattr__(self, "_run", network_of(self.model, self.geometry))

    @property
    def margin(self) -> int:
        return self._run.margin

    def tiles(self, image: np.ndarray, bgr: bool = False, bicubic: bool = False):
        """Yield (r0, r1, c0, c1, srcnn, bicubic-or-None): float64 output tiles in the input's value range.

        `image`: (h, w) gray, (h, w, 2) gray + alpha, (h, w, 3) colour or (h, w, 4) colour + alpha, uint8 or
        uint16, in RGB order or OpenCV's BGR order with `bgr=True` (outputs keep the input's channel order).
        The colour under fully transparent pixels is filled first (`fill_hidden_colour`): no dark or light
        fringe at transparent edges, whoever calls.
        """
        image = fill_hidden_colour(image)
        if geometry_of(self._run).upsample > 1:
            yield from self._lr_tiles(image, bgr, bicubic)
            return
        h, w = image.shape[:2]
        s, m = self.scale, self.margin
        H, W = h * s, w * s
        peak = float(np.iinfo(image.dtype).max)
        k = 255.0 / peak  # the model works on [0, 255] / 255 whatever the bit depth
        channels = 1 if image.ndim == 2 else image.shape[2]
        colour = channels >= 3
        rgb_order = [2, 1, 0] if bgr else [0, 1, 2]
        rows_all, cols_all = axis_taps(h, s, self.resize), axis_taps(w, s, self.resize)
        for r0, r1 in tile_starts(H, self.tile):
            hr_rows = symmetric_indices(np.arange(r0 - m, r1 + m), H)  # the symmetric padding of the whole HR image
            r_idx, r_w = rows_all[0][hr_rows], rows_all[1][hr_rows]
            lo_r, hi_r = int(r_idx.min()), int(r_idx.max()) + 1
            for c0, c1 in tile_starts(W, self.tile):
                hr_cols = symmetric_indices(np.arange(c0 - m, c1 + m), W)
                c_idx, c_w = cols_all[0][hr_cols], cols_all[1][hr_cols]
                lo_c, hi_c = int(c_idx.min()), int(c_idx.max()) + 1
                planes = self._planes(image[lo_r:hi_r, lo_c:hi_c].astype(np.float64) * k, rgb_order)
                up = apply_taps(planes, (r_idx - lo_r, r_w), (c_idx - lo_c, c_w))
                th, tw = r1 - r0, c1 - c0
                window = (up[..., 0] / 255.0).astype(np.float32)
                sr_y = self._run(window[None, :, :, None])[0, :, :, 0].astype(np.float64)
                sr_y = sr_y[:th, :tw] * 255.0  # the model's valid convolutions already removed the margin
                centre = up[m : m + th, m : m + tw]
                yield (
                    r0,
                    r1,
                    c0,
                    c1,
                    self._assemble(sr_y, centre, colour, rgb_order, k),
                    (self._assemble(centre[..., 0], centre, colour, rgb_order, k) if bicubic else None),
                )

    def _lr_tiles(self, image: np.ndarray, bgr: bool, bicubic: bool):
        """`tiles` for a network on the LR image: Y of each LR tile (with `context` LR pixels around it, mirrored
        beyond the edges) through the network; Cb, Cr and alpha bicubic as for SRCNN. Output tiles are
        scale × a whole number of LR pixels, about `tile` a side."""
        g = geometry_of(self._run)
        h, w = image.shape[:2]
        s, c = self.scale, g.context
        skip = s * c - g.left
        k = 255.0 / float(np.iinfo(image.dtype).max)
        channels = 1 if image.ndim == 2 else image.shape[2]
        colour = channels >= 3
        rgb_order = [2, 1, 0] if bgr else [0, 1, 2]
        rows_all, cols_all = axis_taps(h, s, self.resize), axis_taps(w, s, self.resize)
        lr_tile = max(1, self.tile // s)
        for lr0, lr1 in tile_starts(h, lr_tile):
            r0, r1 = lr0 * s, lr1 * s
            r_idx, r_w = rows_all[0][r0:r1], rows_all[1][r0:r1]
            lo_r, hi_r = int(r_idx.min()), int(r_idx.max()) + 1
            lr_rows = symmetric_indices(np.arange(lr0 - c, lr1 + c), h)
            for lc0, lc1 in tile_starts(w, lr_tile):
                c0, c1 = lc0 * s, lc1 * s
                c_idx, c_w = cols_all[0][c0:c1], cols_all[1][c0:c1]
                lo_c, hi_c = int(c_idx.min()), int(c_idx.max()) + 1
                planes = self._planes(image[lo_r:hi_r, lo_c:hi_c].astype(np.float64) * k, rgb_order)
                lr = np.take(np.take(image, lr_rows, 0), symmetric_indices(np.arange(lc0 - c, lc1 + c), w), 1)
                lr_y = self._planes(lr.astype(np.float64) * k, rgb_order)[..., 0]
                up = apply_taps(planes, (r_idx - lo_r, r_w), (c_idx - lo_c, c_w))
                th, tw = r1 - r0, c1 - c0
                sr_y = self._run((lr_y / 255.0).astype(np.float32)[None, :, :, None])[0, :, :, 0].astype(np.float64)
                sr_y = sr_y[skip : skip + th, skip : skip + tw] * 255.0
                yield (
                    r0,
                    r1,
                    c0,
                    c1,
                    self._assemble(sr_y, up, colour, rgb_order, k),
                    (self._assemble(up[..., 0], up, colour, rgb_order, k) if bicubic else None),
                )

    @staticmethod
    def _planes(block: np.ndarray, rgb_order: list[int]) -> np.ndarray:
        """(h, w, C) float64 planes of an image block in [0, 255]: Y, Cb, Cr (and alpha) of a colour one, gray
        (and alpha) of a gray one."""
        if block.ndim == 3 and block.shape[2] >= 3:
            planes = rgb_to_ycbcr(block[..., rgb_order])
            return np.concatenate([planes, block[..., 3:]], axis=2) if block.shape[2] == 4 else planes
        return block[..., None] if block.ndim == 2 else block

    @staticmethod
    def _assemble(y: np.ndarray, centre: np.ndarray, colour: bool, rgb_order: list[int], k: float) -> np.ndarray:
        if not colour:
            if centre.shape[-1] == 2:  # gray + alpha: the alpha plane bicubic, as for colour + alpha
                return np.stack([y, centre[..., 1]], axis=-1) / k
            return y / k
        out = np.empty(centre.shape, np.float64)
        ycc = np.stack([y, centre[..., 1], centre[..., 2]], axis=-1)
        out[..., rgb_order] = ycbcr_to_rgb(ycc)
        if centre.shape[-1] == 4:
            out[..., 3] = centre[..., 3]
        return out / k

    def upscale(self, image: np.ndarray, bgr: bool = False, bicubic: bool = False):
        """(SRCNN, bicubic-or-None) images exactly `scale` times the input size, in the input's dtype."""
        shape = (image.shape[0] * self.scale, image.shape[1] * self.scale) + image.shape[2:]
        out = np.empty(shape, image.dtype)
        bic = np.empty(shape, image.dtype) if bicubic else None
        for r0, r1, c0, c1, sr, bi in self.tiles(image, bgr=bgr, bicubic=bicubic):
            out[r0:r1, c0:c1] = round_to(sr, image.dtype)
            if bicubic:
                bic[r0:r1, c0:c1] = round_to(bi, image.dtype)
        return out, bic

    def upscale_float(self, image: np.ndarray, bicubic: bool = False) -> np.ndarray:
        """The unrounded float64 output (for tests and analysis; small images)."""
        shape = (image.shape[0] * self.scale, image.shape[1] * self.scale) + image.shape[2:]
        out = np.empty(shape, np.float64)
        for r0, r1, c0, c1, sr, bi in self.tiles(image, bicubic=bicubic):
            out[r0:r1, c0:c1] = bi if bicubic else sr
        return out
