"""Arrays → PNG bytes for the browser (display scaling only; the data are never altered)."""

import io

import numpy as np

__all__ = ["png", "gray", "label_rgb", "label_legend", "mask_rgba", "colormap", "figure_png", "volume_slice"]


def _label_colours(n=17):
    """RGB of labels ``0 .. n-1``: the phase colours of every matsight figure (report.style)."""
    from ..report.style import phase_colour

    return np.array([hex_rgb(phase_colour(k)) for k in range(n)], np.uint8)


def png(array):
    """PNG bytes of a uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def window(values, lo_pct=1.0, hi_pct=99.0, *, sample=1_000_000):
    """Percentile display window of an array (finite values, subsampled for speed)."""
    v = np.asarray(values).ravel()
    if v.size > sample:
        v = v[:: v.size // sample + 1]
    v = v[np.isfinite(v)] if v.dtype.kind == "f" else v
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [lo_pct, hi_pct])
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def gray(image, lo=None, hi=None):
    """uint8 grey image, linearly mapped from [lo, hi] (default: 1st/99th percentiles)."""
    img = np.asarray(image, dtype=np.float32)
    if lo is None or hi is None:
        lo, hi = window(img)
    out = (img - lo) / (hi - lo + 1e-12)
    return (np.clip(np.nan_to_num(out), 0, 1) * 255).astype(np.uint8)


def colormap(image, name="viridis", lo=None, hi=None):
    """RGB uint8 image through a matplotlib colormap."""
    from matplotlib import colormaps

    g = gray(image, lo, hi)
    lut = (colormaps[name](np.arange(256))[:, :3] * 255).astype(np.uint8)
    return lut[g]


def label_rgb(labels):
    """RGB uint8 image, label ``k`` in phase colour ``k`` (0 black), as in the reports' label figures."""
    lab = np.asarray(labels).astype(np.int64)
    colours = _label_colours()
    return colours[np.mod(lab, len(colours))]


def label_legend(values):
    """``[{"label": k, "colour": "#rrggbb"}]`` for the label values present (the viewer's legend)."""
    from ..report.style import phase_colour

    return [{"label": int(k), "colour": phase_colour(int(k) % 17)} for k in values]


def hex_rgb(color):
    """``"#e6194b"`` → (230, 25, 75)."""
    c = color.lstrip("#")
    return tuple(int(c[i : i + 2], 16) for i in (0, 2, 4))


def mask_rgba(mask, color):
    """Opaque colour where ``mask`` is true, transparent elsewhere (the page sets the opacity)."""
    m = np.asarray(mask, bool)
    out = np.zeros(m.shape + (4,), np.uint8)
    out[m, :3] = hex_rgb(color)
    out[m, 3] = 255
    return out


def figure_png(fig, dpi=110):
    """PNG bytes of a matplotlib figure (closed afterwards); the figures are the reports' own (one style)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def is_labels(volume, *, sample=2_000_000):
    """Integer data with few distinct values — drawn with label colours rather than grey."""
    v = np.asarray(volume)
    if v.dtype.kind not in "biu":
        return False
    flat = v.ravel()[:: max(1, v.size // sample)]
    return flat.size > 0 and int(flat.min()) >= 0 and int(flat.max()) < 17


def volume_slice(volume, axis, index, *, cmap="auto", window_=None):
    """PNG of slice ``index`` along ``axis`` (0 = z, 1 = y, 2 = x) of a 2D or 3D array-like (zarr ok)."""
    ndim = len(volume.shape)
    if ndim == 2:
        sl = np.asarray(volume[:, :])
    else:
        idx = [slice(None)] * 3
        idx[axis] = int(index)
        sl = np.asarray(volume[tuple(idx)])
    if cmap == "auto":
        cmap = "labels" if is_labels(sl) else "gray"
    if cmap == "labels":
        return png(label_rgb(sl))
    lo, hi = window_ if window_ is not None else window(sl)
    if cmap == "gray":
        return png(gray(sl, lo, hi))
    return png(colormap(sl, cmap, lo, hi))
