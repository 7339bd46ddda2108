"""How sharp can a faithful 2× restoration of the cell XCT be? Line FWHM and CNR of band-limited HQ slices.

``restore_xct.py`` asks InDI for thin-line widths ≤ the HQ's and a CNR ≥ the HQ's from an LQ scan at twice
the voxel size. This script measures, on HQ slices of ``shared/data/xct/cell_vol.tif`` and at the HQ's line
positions (the measures of ``restore.evaluate.compare``), what images holding only the LQ's information reach:

- ``band-limited``: the HQ with every frequency above the LQ's Nyquist limit (0.25 cycles per HQ pixel)
  removed — the best any reconstruction that does not invent detail can do from a noise-free LQ;
- ``2x + bicubic``: a noise-free 2× area downsampling upscaled bicubically.

Their PSNR against the HQ (data range as in ``restore.evaluate.compare``) is the ceiling of a reconstruction
that keeps to the LQ's band: what the HQ holds above it counts as error.

Usage::

    python benchmarks/restore_bandlimit.py   # slices 60, 65 (transition), 85, 90 (jelly roll); ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "xct" / "cell_vol.tif"


def main(slices=(60, 65, 85, 90), radius=250.0):
    from matsight.io import read_volume
    from matsight.metrics.image_quality import cnr, psnr
    from matsight.metrics.resolution import line_fwhm
    from matsight.restore.evaluate import _otsu_in
    from matsight.restore.pairs import downsample
    from matsight.restore.register import fov_mask, upscale

    vol = np.asarray(read_volume(os.environ.get("MATSIGHT_XCT", DATA)), dtype=np.float32)
    rows = {}
    for z in slices:
        hq = vol[z]
        mask = fov_mask(hq.shape, radius=radius)
        fg, bg = (m[0] for m in _otsu_in(hq[None], mask[None], erode=2))
        ref = line_fwhm(hq, mask=mask, n_lines=80)
        data_range = float(np.subtract(*np.percentile(hq[mask], [99.5, 0.5])))  # as restore.evaluate.compare
        ky = np.abs(np.fft.fftfreq(hq.shape[0]))[:, None]
        kx = np.abs(np.fft.fftfreq(hq.shape[1]))[None]
        band = np.real(np.fft.ifft2(np.fft.fft2(hq) * ((ky <= 0.25) & (kx <= 0.25))))
        bicubic = upscale(downsample(hq, 2), 2, shape=hq.shape)  # as the pair's "LQ bicubic"
        for name, img in (("HQ", hq), ("band-limited", band), ("2x + bicubic", bicubic)):
            lw = line_fwhm(img, points=ref.points, normals=ref.normals, mask=mask)
            rows.setdefault(name, {})[str(z)] = {
                "line_fwhm_median": float(lw.median),
                "n_lines": int(lw.finite.size),
                "cnr": float(cnr(img, fg, bg)),
                "psnr": psnr(hq, img, data_range=data_range, mask=mask) if img is not hq else None,
            }
    out = {"data": str(DATA), "slices": list(slices), "eval_radius_px": radius, "images": rows}
    (HERE / "results" / "restore_bandlimit.json").write_text(json.dumps(out, indent=1))
    for name, per in rows.items():
        print(name, {z: {k: v if v is None else round(v, 2) for k, v in r.items()} for z, r in per.items()})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slices", default="60,65,85,90", help="comma list of z slices of the HQ volume")
    main(slices=tuple(int(z) for z in ap.parse_args().slices.split(",")))
