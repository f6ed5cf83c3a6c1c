"""Spatial maps over images, with opencv (as pytorch-grad-cam's ``show_cam_on_image``) and
matplotlib's colormap registry: resize the map, colour it, blend it over the image the model saw."""

from __future__ import annotations

import cv2
import numpy as np

from ..explain.statistics import FLAT_RANGE

COLORMAPS = ("jet", "inferno", "viridis", "magma", "gray")  # the overlay's choices


def colorize(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """RGB uint8 (..., 3) of ``values`` through matplotlib's colormap ``cmap`` over [vmin, vmax] (clipped)."""
    from matplotlib import colormaps  # the registry; imported on first use

    t = (np.asarray(values, dtype=np.float64) - vmin) / (vmax - vmin)
    return colormaps[cmap](np.clip(t, 0.0, 1.0), bytes=True)[..., :3]


def upsample(spatial_map: np.ndarray, size: int, smooth: bool) -> np.ndarray:
    """A (h, w) map resized to (size, size): nearest (the real grid) or bicubic (smooth)."""
    interpolation = cv2.INTER_CUBIC if smooth else cv2.INTER_NEAREST
    return cv2.resize(np.asarray(spatial_map, dtype=np.float32), (size, size), interpolation=interpolation)


def value_range(spatial_map: np.ndarray, scale: str) -> tuple[float, float]:
    """Colour range: ``absolute`` is the sigmoid's full [0, 1]; ``relative`` the map's own min..max."""
    if scale == "absolute":
        return 0.0, 1.0
    lo, hi = float(np.min(spatial_map)), float(np.max(spatial_map))
    return (lo, hi) if hi > lo else (lo, lo + 1e-6)


def overlay(view: np.ndarray, spatial_map: np.ndarray, cmap: str = "jet", opacity: float = 0.5,
            smooth: bool = True, scale: str = "relative") -> np.ndarray:
    """The spatial map coloured and blended over ``view`` (uint8 RGB); opacity 1 shows the map alone."""
    values = upsample(spatial_map, view.shape[0], smooth)
    colour = colorize(values, cmap, *value_range(spatial_map, scale))
    return cv2.addWeighted(colour, opacity, np.ascontiguousarray(view), 1.0 - opacity, 0.0)


def enlarge(image: np.ndarray, size: int) -> np.ndarray:
    """A small image (a model's 32x32 input) enlarged to ``size`` pixels with nearest upsampling:
    every input pixel stays a visible square."""
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_NEAREST)


def range_note(spatial_map: np.ndarray) -> str:
    """The map's actual minimum and maximum, and a plain warning when it is nearly flat (one or more sentences)."""
    lo, hi = float(np.min(spatial_map)), float(np.max(spatial_map))
    text = f"Values {lo:.4f} to {hi:.4f}."
    if hi - lo < FLAT_RANGE:
        text += (f" Nearly flat: every position gets almost the same weight (range {hi - lo:.4f})"
                 + ("; the gate passes almost everything" if lo > 0.9 else "")
                 + ". On the relative scale the colours stretch this tiny difference.")
    return text


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG encoding of an RGB uint8 array (what Streamlit sends for an opaque image, at its quality)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the image could not be encoded as JPEG")
    return buf.tobytes()
