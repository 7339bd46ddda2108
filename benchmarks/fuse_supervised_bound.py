"""What the CPU preset's generator can learn at all: trained *supervised* on the synthetic truth.

The fidelity benchmark's SR misses the truth's thin binder films between particles (the LR cannot show them),
so its active phase over-connects. This script asks whether the generator could place those films if it were
told where they are: the same architecture, LR volume and crops as ``fuse_fidelity.py --case synthetic``, but
trained by cross-entropy against the truth's matching HR crop (impossible in practice, where no 3D truth
exists) for a wall-clock budget, then generated over the whole volume and scored with the same figures.
Active transport efficiency and films near the truth's → the generator can represent them and the GAN's
training signal is what is missing; far from them → the architecture or the LR's information is the limit.

    python benchmarks/fuse_supervised_bound.py --budget 10m

Result: ``benchmarks/results/fuse_supervised_bound.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fuse_fidelity import (  # noqa: E402  (a sibling script: the same truth, crops and scores)
    _euler_per_kpx,
    _fidelity,
    _machine,
    _seam_stats,
    _structure,
    _truth_and_lr,
)


def train_supervised(lr, truth, cfg, *, budget_s, seed=0, lr_rate=1e-3):
    """Train the CPU preset's generator by cross-entropy on matching LR / truth crops."""
    import torch
    import torch.nn.functional as F

    from matsight.fuse.data import one_hot
    from matsight.fuse.networks import build_generator

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = build_generator(cfg)
    opt = torch.optim.Adam(gen.parameters(), lr=lr_rate)
    c, o, k = cfg.lr_crop, cfg.training.output_size, round(cfg.scale)
    lr_t = torch.from_numpy(lr.astype(np.int64))
    truth_t = torch.from_numpy(truth.astype(np.int64))
    t0, it, losses = time.perf_counter(), 0, []
    while time.perf_counter() - t0 < budget_s:
        starts = rng.integers(0, lr.shape[0] - c + 1, (cfg.training.fake_batch, 3))
        x = one_hot(
            torch.stack([lr_t[z : z + c, y : y + c, w : w + c] for z, y, w in starts]), cfg.n_lr_phases
        )
        target = torch.stack(
            [truth_t[k * z : k * z + o, k * y : k * y + o, k * w : k * w + o] for z, y, w in starts]
        )
        noise = torch.randn(x.shape[0], 1, *x.shape[2:])
        loss = F.cross_entropy(gen.logits(torch.cat([x, noise], 1)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        it += 1
        if it % 500 == 0:
            print(f"iteration {it}: cross-entropy {np.median(losses[-500:]):.4f}", flush=True)
    return gen.eval(), it, time.perf_counter() - t0, float(np.median(losses[-200:]))


def main():
    from matsight._duration import parse_duration
    from matsight.fuse.config import make_config
    from matsight.fuse.predict import predict as generate

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", default="10m", help="training wall time (default 10m)")
    ap.add_argument("--size", type=int, default=256, help="edge of the synthetic truth (as fuse_fidelity.py)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    t_all = time.perf_counter()
    truth, lr, _ = _truth_and_lr(args)
    cfg = make_config("cpu", scale=4, n_hr_phases=3, n_lr_phases=2, compare_phases=[1], seed=args.seed)
    gen, iterations, train_s, ce = train_supervised(
        lr, truth, cfg, budget_s=parse_duration(args.budget), seed=args.seed
    )
    sr = generate((gen, cfg, {}), lr, seed=args.seed, device="cpu").labels
    b = (truth.shape[0] - sr.shape[0]) // 2
    truth_c = truth[b:-b, b:-b, b:-b]
    phases = [0, 1, 2]
    m_truth, m_sr = _structure(truth_c, phases=phases), _structure(sr, phases=phases)
    record = {
        "benchmark": "fuse_supervised_bound",
        "command": f"python benchmarks/fuse_supervised_bound.py --budget {args.budget}",
        "machine": _machine(),
        "iterations": iterations,
        "train_s": train_s,
        "cross_entropy_median_last_200": ce,
        "truth": m_truth,
        "sr": m_sr,
        **_fidelity(m_sr, m_truth, phases),
        "accuracy": float((sr == truth_c).mean()),
        "binder_seams": {"truth": _seam_stats(truth_c), "sr": _seam_stats(sr)},
        "euler_per_kpx": {"truth": _euler_per_kpx(truth_c), "sr": _euler_per_kpx(sr)},
    }
    record["wall_s"] = time.perf_counter() - t_all
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuse_supervised_bound.json").write_text(json.dumps(record, indent=1, default=str))
    print(
        json.dumps(
            {
                k: record[k]
                for k in (
                    "iterations",
                    "accuracy",
                    "delta_transport_efficiency",
                    "rel_delta_tpb",
                    "rel_delta_ssa",
                    "binder_seams",
                    "euler_per_kpx",
                )
            },
            indent=1,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
