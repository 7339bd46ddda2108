"""Where does an InDI model keep the windings' contrast? CNR and region means on blocks of z slices.

``restore_xct.py`` reports one held-out block. This script takes a model it trained (its ``--out`` folder)
and measures, on any blocks of the same pair — held out or trained on — the windings' (Otsu foreground of
the HQ) and the background's mean intensity and the CNR of the HQ, the LQ bicubic and the InDI output
(N = 1), with the masks and the evaluation radius of ``restore_xct.py``. A model that reproduces the HQ's
contrast on slices like its training slices but not on a block unlike them is limited by what it saw, not
by the noise.

Usage::

    python benchmarks/restore_xct.py --budget 30m --out /tmp/restore_xct_roll              # held out: 82-91
    python benchmarks/restore_contrast.py /tmp/restore_xct_roll --blocks 30:40,59:69,82:92  # ~3 min
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from restore_xct import GAP, _pair  # noqa: E402  (same pair, cache and context gap)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a restore_xct.py --out folder (its indi/ model and results.json)")
    ap.add_argument(
        "--blocks", default="30:40,59:69,82:92", help="comma list of START:STOP z blocks of the pair"
    )
    ap.add_argument("--cache", type=Path, default=Path("/tmp/restore_xct_cache"))
    ap.add_argument("--radius", type=float, default=250.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "restore_contrast.json")
    args = ap.parse_args(argv)

    import torch

    from matsight.metrics.image_quality import cnr
    from matsight.restore import load as load_model
    from matsight.restore.config import parse_slices
    from matsight.restore.evaluate import _otsu_in
    from matsight.restore.predict import predict as enhance
    from matsight.restore.register import denormalise, fov_mask

    torch.set_num_threads(args.threads)
    run = json.loads((args.run / "results.json").read_text())
    pair, _ = _pair(args.cache, run["quick"], 0, run["dose"])
    model = load_model(args.run / "indi", device="cpu")
    t0, t1 = run["test_slices"]
    rows = {}
    for block in args.blocks.split(","):
        z = np.asarray(parse_slices(block, "--blocks"))
        lq = denormalise(pair.lq_up[z[0] - GAP : z[-1] + GAP + 1], pair.stats["lq"])
        hq = denormalise(pair.hq[z], pair.stats["hq"])
        mask = fov_mask(hq.shape, radius=args.radius)
        if pair.mask is not None:
            mask &= pair.mask[z]
        e = enhance(model, lq, indi_steps=1, slice_axis=0, upscaled=True, onestep=False, device="cpu")
        fg, bg = _otsu_in(hq, mask, erode=1)
        held_out = bool(z[-1] >= t0 - GAP and z[0] <= t1 + GAP)
        row = {"held_out": held_out}
        for name, im in (("HQ", hq), ("LQ bicubic", e.bicubic[GAP:-GAP]), ("InDI N=1", e.image[GAP:-GAP])):
            row[name] = {
                "fg_mean": float(im[fg].mean()),
                "bg_mean": float(im[bg].mean()),
                "cnr": float(cnr(im, fg, bg)),
            }
        row["cnr_indi_over_hq"] = row["InDI N=1"]["cnr"] / row["HQ"]["cnr"]
        rows[block] = row
        print(block, json.dumps(row), flush=True)
    out = {
        "command": "python benchmarks/restore_contrast.py " + " ".join(sys.argv[1:]),
        "run": run["command"],
        "test_slices": run["test_slices"],
        "radius_px": args.radius,
        "blocks": rows,
    }
    args.out.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
