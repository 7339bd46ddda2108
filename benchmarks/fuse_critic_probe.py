"""What a trained fuse critic scores: structure, or how far a slice is from one-hot?

The synthetic fidelity benchmark's SR over-connects the active phase: it misses the truth's thin binder films
between particles. This script loads the critic of a run kept by ``fuse_fidelity.py --keep-run`` and scores
random slice crops (all three planes, crop size of the run) of

- the HR image the run trained on, the 3D truth, and the truth with its binder films turned active
  (the structural difference the critic should punish);
- the SR volume generated from the run (argmax labels, one-hot like the real slices);
- the training generator's soft output on LR crops — what the critic was trained against —
  with how saturated those probabilities are.

A critic that separates truth from films-filled by much less than it separates soft fakes from one-hot
slices spends its capacity on softness, and the generator gets little signal about the films.

    python benchmarks/fuse_fidelity.py --case synthetic --budget 8m --keep-run --out /tmp/f
    python benchmarks/fuse_critic_probe.py /tmp/f/fuse_fidelity_synthetic/run --tag soft

Result: ``benchmarks/results/fuse_critic_probe_<tag>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fuse_fidelity import (  # noqa: E402  (the same truth, HR section and films)
    _binder_seams,
    _hr_section,
    _truth_and_lr,
)


def probe(run, *, size=256, hr_size=1024, seed=0, n=3000, fake_draws=20):
    """Mean critic score (± standard error) per kind of slice; see the module docstring."""
    import torch

    from matsight.fuse.config import FuseConfig
    from matsight.fuse.data import LRSampler, one_hot
    from matsight.fuse.losses import slices as _slices
    from matsight.fuse.networks import build_critics, build_generator
    from matsight.fuse.predict import predict as generate
    from matsight.fuse.run import LAST
    from matsight.nn.checkpoint import load_checkpoint

    groups, meta = load_checkpoint(Path(run) / LAST)
    cfg = FuseConfig.from_saved(meta["config"])
    critic = build_critics(cfg)[0]
    critic.load_state_dict(groups["critic0"])
    critic.eval()
    s = cfg.slice_size
    rng = np.random.default_rng(seed)
    truth, lr, _ = _truth_and_lr(argparse.Namespace(size=size, seed=seed))
    hr = _hr_section(hr_size, seed)
    filled = np.where(_binder_seams(truth), 1, truth).astype(np.uint8)
    sr = generate(run, lr, seed=seed, device="cpu").labels

    def crops(vol):
        out = []
        for _ in range(n):
            v = vol[None] if vol.ndim == 2 else np.moveaxis(vol, rng.integers(3), 0)
            z = rng.integers(v.shape[0])
            y, x = rng.integers(0, v.shape[1] - s + 1, 2)
            out.append(v[z, y : y + s, x : x + s])
        return np.stack(out)

    def stats(scores):
        scores = np.asarray(scores)
        return {"mean": float(scores.mean()), "se": float(scores.std() / np.sqrt(len(scores)))}

    @torch.no_grad()
    def score(labels):
        x = one_hot(torch.from_numpy(labels.astype(np.int64)), cfg.n_hr_phases)
        return stats(torch.cat([critic(x[i : i + 256]) for i in range(0, len(x), 256)]).numpy())

    res = {
        "HR image": score(crops(hr)),
        "truth": score(crops(truth)),
        "truth, films filled": score(crops(filled)),
        "SR argmax": score(crops(sr)),
    }
    # what the critic was trained against: the raw (not averaged) generator's probabilities, train mode
    gen = build_generator(cfg)
    gen.load_state_dict(groups["generator"])
    gen.train()
    sampler = LRSampler(lr, crop=cfg.lr_crop, n_phases=cfg.n_lr_phases, rng=rng)
    torch.manual_seed(seed)
    scores, maxp = [], []
    with torch.no_grad():
        for _ in range(fake_draws):
            lo = sampler.sample(cfg.training.fake_batch)
            p = gen(torch.cat([lo, torch.randn(lo.shape[0], 1, *lo.shape[2:])], 1))
            sl = _slices(p, 0, cfg.training.edge_crop)  # the edge-cropped slices the critic judges
            scores.append(critic(sl).numpy())
            maxp.append(sl.max(1).values.flatten().numpy())
    m = np.concatenate(maxp)
    res["generator probabilities"] = stats(np.concatenate(scores))
    res["max probability"] = {
        "mean": float(m.mean()),
        "share_above_0.99": float((m > 0.99).mean()),
        "share_below_0.9": float((m < 0.9).mean()),
    }
    t = res["truth"]["mean"]
    res["gap_truth_minus_films_filled"] = t - res["truth, films filled"]["mean"]
    res["gap_truth_minus_generator_probabilities"] = t - res["generator probabilities"]["mean"]
    res["config"] = {"critic_input": cfg.training.critic_input, "iteration": meta.get("iteration")}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="run folder kept by fuse_fidelity.py --case synthetic --keep-run")
    ap.add_argument("--tag", default="run", help="suffix of the result file")
    ap.add_argument("--seed", type=int, default=0, help="the fidelity run's --seed")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    res = probe(args.run, seed=args.seed)
    record = {"benchmark": "fuse_critic_probe", "command": " ".join(["python", *sys.argv]), **res}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"fuse_critic_probe_{args.tag}.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
