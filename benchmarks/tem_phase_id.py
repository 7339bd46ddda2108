"""Phase identification on simulated HRTEM images: precision/recall, d error, classical vs U-Net, speed.

Simulation (``--engine abtem``, default when abTEM is installed): for each phase and zone axis a periodic
crystal tile (~4 nm; Li2CO3 [010] and [100]: ~10 nm, see below) 5 nm thick is simulated by abTEM multislice
at 300 kV (plane wave, potential sampling 0.1 Å, Lobato parametrisation) and imaged through the objective lens
(Cs 1.2 mm, Scherzer defocus, 30 mrad aperture), giving the image intensity with dynamical scattering and the
real contrast transfer. Frames are composed from these tiles: every grain samples its tile (periodic, cubic
spline interpolation) rotated at random inside its mask, on an amorphous background (CTF-filtered speckle,
:mod:`matsight.tem.lattice`), and the frame is counted with Poisson noise at the dose. Single-phase frames
hold one grain (a disk), mixed frames two grains of two different phases split by a line through the centre at
a random angle, with an amorphous gap. The ground truth is the set of phases placed.

Li2CO3 (C2/c) has no small orthogonal supercell in its [010] and [100] zones: its tiles are 12a × 18 c·sinβ
(10.0 × 10.1 nm) and 20b × 18 c·sinβ (9.9 × 10.1 nm), periodic along a (b) and wrapped along c⊥ with a
stacking seam at the tile edge — a line defect every 10 nm in frames larger than the tile.
``--engine lattice`` uses :mod:`matsight.tem.lattice` (kinematic fringes) instead.

Scored per detector (classical, U-Net): phase-level precision/recall/F1 over all frames (a phase found that
was not placed is a false positive, a placed phase not found a false negative), per dose; the d error of every
spot matched to a placed phase vs the d computed from the structure; the seconds per 2048² frame (median of 3;
no maps, as in series, and with maps) and per 100-frame 2048² movie (Poisson re-noised frames of one
composite); the d error of the classical detector on the single-grain frames with the Hann window and with
the periodic-component FFT (``window="periodic"``); plus the held-out synthetic-FFT segmentation scores of
both detectors (:func:`matsight.tem.evaluate.evaluate`). The phase-level scoring is
:func:`matsight.tem.evaluate.evaluate_phase_id`.

Usage: ``python benchmarks/tem_phase_id.py [--engine abtem|lattice] [--quick] [--out benchmarks/results]``
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

PHASE_ZONES = {
    "Li": [(0, 0, 1), (0, 1, 1), (1, 1, 1)],
    "LiF": [(0, 0, 1), (0, 1, 1), (1, 1, 1)],
    "Li2O": [(0, 0, 1), (0, 1, 1), (1, 1, 1)],
    "Li2CO3": [(0, 1, 0), (1, 0, 0)],
}
PIXEL_NM = 0.02
CACHE = Path("/tmp/matsight_tem_tiles")
SIM_SECONDS = {}  # abTEM seconds per tile simulated in this run (cached tiles are not re-simulated)


# ----------------------------------------------------------------------------------------- abTEM tiles
def _ase_bulk(name):
    import gemmi
    from ase.spacegroup import crystal

    from matsight.tem.crystals import load_phase

    p = load_phase(name)
    sg = gemmi.SpaceGroup(p.space_group).number
    return crystal(
        [a["element"] for a in p.atoms], [a["xyz"] for a in p.atoms], spacegroup=sg, cellpar=list(p.cell)
    )


def _cubic_slab(name, zone, tile_A=40.0, thick_A=50.0):
    import abtem
    from ase.build import surface

    # layers=2: a [011] slab of one layer halves the stacking period (REFERENCE.md trap)
    s = abtem.orthogonalize_cell(surface(_ase_bulk(name), zone, layers=2, periodic=True), max_repetitions=6)
    L = np.diag(s.cell)
    rep = np.maximum(np.round(tile_A / L[:2]).astype(int), 1)
    s = s * (int(rep[0]), int(rep[1]), max(1, int(round(thick_A / L[2]))))
    return s


def _li2co3_slab(zone, tile_A=100.0, nc=18, thick_A=50.0):
    """Orthogonal periodic Li2CO3 tile with the beam along b ([010]) or a ([100]).

    The monoclinic b is normal to a and c, so the tile is (in-plane lattice vector) × c⊥ × beam; c's component
    along the other vector is wrapped, leaving a stacking seam at one tile edge (see the module docstring).
    """
    from ase import Atoms

    bulk = _ase_bulk("Li2CO3")
    a, b, c = (np.asarray(v) for v in bulk.cell)
    if tuple(zone) == (0, 1, 0):
        beam, inplane, reps = b, a, lambda nb, ni: (ni + 8, nb, nc)
    elif tuple(zone) == (1, 0, 0):
        beam, inplane, reps = a, b, lambda nb, ni: (nb + 8, ni, nc)
    else:
        raise ValueError(f"Li2CO3 tiles are built for [010] and [100], not {zone}")
    n_beam = max(1, int(round(thick_A / np.linalg.norm(beam))))
    n_in_plane = max(1, int(round(tile_A / np.linalg.norm(inplane))))
    x = inplane / np.linalg.norm(inplane)
    z = beam / np.linalg.norm(beam)
    y = np.cross(z, x)
    L = np.array(
        [n_in_plane * np.linalg.norm(inplane), nc * abs(np.dot(c, y)), n_beam * np.linalg.norm(beam)]
    )
    big = bulk * reps(
        n_beam, n_in_plane
    )  # extra cells along a so that the sheared stack fills the box after wrapping
    P = big.positions
    Q = np.mod(np.column_stack([P @ x, P @ y, P @ z]), L)
    # drop duplicates created by the extra cells (same wrapped position, same element)
    key = np.round(Q / 0.05).astype(np.int64) % np.round(L / 0.05).astype(np.int64)
    _, idx = np.unique(np.column_stack([key, big.numbers]), axis=0, return_index=True)
    return Atoms(numbers=big.numbers[idx], positions=Q[idx], cell=list(L), pbc=True)


def simulate_tile(name, zone, *, out_sampling_A=0.2):
    """abTEM HRTEM intensity of one periodic tile → (image (mean 1), lengths (Å) of its two axes)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / f"{name}_{''.join(map(str, zone))}.npz"
    if f.exists():
        d = np.load(f)
        return d["image"], tuple(d["length"])
    import abtem

    t0 = time.perf_counter()

    abtem.config.set({"device": "cpu", "fft": "numpy"})
    slab = _li2co3_slab(zone) if name == "Li2CO3" else _cubic_slab(name, zone)
    slab.center(axis=2, vacuum=2.0)
    pot = abtem.Potential(
        slab, sampling=0.1, slice_thickness=2.0, projection="infinite", parametrization="lobato"
    )
    exit_wave = abtem.PlaneWave(energy=300e3).multislice(pot)
    ctf = abtem.CTF(Cs=1.2e7, energy=300e3, defocus="scherzer", semiangle_cutoff=30)
    img = np.asarray(exit_wave.apply_ctf(ctf).intensity().compute().array, float)  # axes (x, y)
    L = (float(slab.cell[0, 0]), float(slab.cell[1, 1]))
    # Fourier resampling to ~out_sampling (exact: keeps every lattice frequency)
    n_out = [int(round(Lk / out_sampling_A)) for Lk in L]
    F = np.fft.fftshift(np.fft.fft2(img))
    cy, cx = img.shape[0] // 2, img.shape[1] // 2
    F = F[
        cy - n_out[0] // 2 : cy - n_out[0] // 2 + n_out[0], cx - n_out[1] // 2 : cx - n_out[1] // 2 + n_out[1]
    ]
    small = np.fft.ifft2(np.fft.ifftshift(F)).real
    small /= small.mean()
    np.savez(f, image=small, length=np.array(L))
    SIM_SECONDS[f"{name} [{''.join(map(str, zone))}]"] = time.perf_counter() - t0
    return small, L


# ----------------------------------------------------------------------------------------- frames
def render_grain(tile, length_A, shape, rotation_deg, shift_A, pixel_nm=PIXEL_NM, coeffs=None):
    """Sample a periodic tile on the frame grid (rotated, shifted) with cubic splines (grid-wrap)."""
    if coeffs is None:
        coeffs = ndi.spline_filter(tile, order=3, mode="grid-wrap")
    ps = pixel_nm * 10
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    yy, xx = yy * ps, xx * ps
    t = np.radians(rotation_deg)
    u = np.cos(t) * yy - np.sin(t) * xx + shift_A[0]
    v = np.sin(t) * yy + np.cos(t) * xx + shift_A[1]
    iu = u / (length_A[0] / tile.shape[0])
    iv = v / (length_A[1] / tile.shape[1])
    return ndi.map_coordinates(coeffs, [iu, iv], order=3, mode="grid-wrap", prefilter=False)


def compose(tiles, grains, shape, dose, rng, amorphous=0.15):
    """grains: list of (key, mask) → Poisson counts and the expected intensity."""
    from matsight.tem.lattice import _amorphous, _soft

    inten = np.ones(shape)
    for key, mask in grains:
        tile, L = tiles[key]
        img = render_grain(tile, L, shape, rng.uniform(0, 360), rng.uniform(0, 40, 2))
        m = _soft(mask)
        inten = inten * (1 - m) + img * m
    inten = inten + amorphous * _amorphous(shape, (PIXEL_NM, PIXEL_NM), rng)
    lam = np.clip(inten, 0, None) * dose * (10 * PIXEL_NM) ** 2
    return rng.poisson(lam).astype(np.float64), lam


def _disk(shape, r):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 <= r**2


def _halves(shape, angle, gap=0.04):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    s = (xx - shape[1] / 2) * np.cos(angle) + (yy - shape[0] / 2) * np.sin(angle)
    g = gap * shape[1]
    return s < -g, s > g


def lattice_tiles():
    """Fallback tiles from matsight.tem.lattice (kinematic fringes, exactly periodic 4 nm tiles)."""
    from matsight.tem.lattice import Grain, lattice_image

    tiles = {}
    for name, zones in PHASE_ZONES.items():
        for z in zones:
            li = lattice_image(
                (200, 200), PIXEL_NM, grains=[Grain(name, z, 0.0)], dose=1e12, amorphous=0, seed=0
            )
            tiles[(name, z)] = (
                1 + 0.25 * li.clean,
                (40.0, 40.0),
            )  # not periodic in 4 nm: seams (fallback only)
    return tiles


# ----------------------------------------------------------------------------------------- scoring
def score_frames(frames, detectors, phases):
    from matsight.tem.evaluate import evaluate_phase_id

    return evaluate_phase_id(frames, PIXEL_NM, detectors, phases)


def window_d_error(frames, phases, windows=("hann", "periodic")):
    """d error (%) of the classical detector on the single-grain frames, per FFT window."""
    from matsight.tem import analyze
    from matsight.tem.crystals import load_phases
    from matsight.tem.evaluate import d_error_stats

    plist = load_phases(phases)
    out = {}
    for win in windows:
        derr = []
        for fr in frames:
            if fr["kind"] != "single":
                continue
            res = analyze(fr["image"], PIXEL_NM, plist, detector="classical", maps=False, window=win)
            derr += [
                abs(r["d_error_percent"])
                for r in res.table()
                if r["phase"] in fr["truth"] and r["d_ref_angstrom"]
            ]
        out[win] = d_error_stats(derr, with_max=False)
    return out


class _Movie:
    """100 Poisson re-noised frames of one expected-intensity image, made on demand (no 3 GB stack)."""

    def __init__(self, lam, n, seed=0):
        self.lam, self.n, self.seed = lam, n, seed

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.random.default_rng(self.seed + i).poisson(self.lam).astype(np.float32)


def timing(tiles, detectors, n_movie, rng):
    from matsight.tem import analyze, analyze_series

    shape = (2048, 2048)
    keys = [("LiF", (0, 1, 1)), ("Li2O", (0, 0, 1))]
    m1, m2 = _halves(shape, 0.7)
    img, lam = compose(tiles, [(keys[0], m1), (keys[1], m2)], shape, 200.0, rng)
    out = {}
    for det in detectors:
        analyze(img, PIXEL_NM, detector=det, maps=False)  # warm-up (imports, weights)
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            res = analyze(img, PIXEL_NM, detector=det, maps=False)
            ts.append(time.perf_counter() - t)
        t = time.perf_counter()
        res_m = analyze(img, PIXEL_NM, detector=det, maps=True)
        t_maps = time.perf_counter() - t
        movie = _Movie(lam, n_movie)
        t = time.perf_counter()
        for i in range(min(n_movie, 10)):
            movie[i]
        t_gen = (time.perf_counter() - t) / min(n_movie, 10) * n_movie
        t = time.perf_counter()
        ser = analyze_series(movie, PIXEL_NM, detector=det)
        t_movie = time.perf_counter() - t
        out[det] = {
            "frame_seconds_no_maps_median": float(np.median(ts)),
            "frame_seconds_with_maps": t_maps,
            "timings_breakdown": {k: round(v, 4) for k, v in res.timings.items()},
            "phases_found": res.phases_found,
            "phases_found_with_maps": res_m.phases_found,
            "movie_frames": n_movie,
            "movie_seconds_total": t_movie,
            "movie_seconds_frame_generation_est": t_gen,
            "movie_seconds_analysis": t_movie - t_gen,
            "movie_first_seen": {k: v for k, v in ser.first_seen().items()},
            "movie_frames_with_exactly_the_placed_phases": int(
                sum(
                    {p for p in ser.phases if p != "unknown" and ser.n_spots[p][i] > 0} == {"LiF", "Li2O"}
                    for i in range(len(ser.frames))
                )
            ),
        }
    return out


def figures(res, tiles, out_dir, example):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    dets = list(res["phase_id"])
    doses = list(res["phase_id"][dets[0]]["by_dose"])
    w = 0.8 / len(dets)
    for k, det in enumerate(dets):
        f1 = [res["phase_id"][det]["by_dose"][d]["f1"] for d in doses]
        axes[0].bar(np.arange(len(doses)) + k * w, f1, w, label=det)
    axes[0].axhline(0.95, color="k", ls="--", lw=0.8)
    axes[0].set_xticks(np.arange(len(doses)) + w / 2, [f"{float(d):g}" for d in doses])
    axes[0].set_xlabel("dose (e/Å²)")
    axes[0].set_ylabel("phase-ID F1")
    axes[0].set_ylim(0, 1.05)
    axes[0].legend()
    axes[1].imshow(example["image"], cmap="gray")
    axes[1].set_title(f"example mixed frame: {', '.join(example['truth'])}")
    axes[1].axis("off")
    from matsight.tem import analyze

    r = analyze(example["image"], PIXEL_NM)
    axes[2].imshow(r.maps.labels, cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
    axes[2].set_title("phase map: " + ", ".join(f"{i + 1}={n}" for i, n in enumerate(r.maps.phase_names)))
    axes[2].axis("off")
    fig.tight_layout()
    fig.savefig(out_dir / "tem_phase_id.png", dpi=90)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", choices=["abtem", "lattice"], default=None)
    ap.add_argument("--quick", action="store_true", help="fewer frames, 10-frame movie")
    ap.add_argument("--seeds", type=int, default=2, help="single-phase frames per tile and dose")
    ap.add_argument("--mixed", type=int, default=12, help="mixed frames per dose")
    ap.add_argument("--movie", type=int, default=100)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.mixed, args.movie = 1, 4, 10
    engine = args.engine
    if engine is None:
        try:
            import abtem  # noqa: F401

            engine = "abtem"
        except ImportError:
            engine = "lattice"
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    if engine == "abtem":
        tiles = {}
        for name, zones in PHASE_ZONES.items():
            for z in zones:
                t = time.perf_counter()
                tiles[(name, z)] = simulate_tile(name, z)
                print(
                    f"tile {name} {z}: {tiles[(name, z)][0].shape} in {time.perf_counter() - t:.1f} s",
                    flush=True,
                )
    else:
        tiles = lattice_tiles()
    t_sim = time.perf_counter() - t0
    detectors = ["classical", "unet"]
    doses = [50.0, 200.0, 1000.0]
    shape = (512, 512)
    frames = []
    keys = list(tiles)
    for key in keys:
        for dose in doses:
            for _ in range(args.seeds):
                mask = _disk(shape, 0.42 * shape[0])
                img, _ = compose(tiles, [(key, mask)], shape, dose, rng)
                frames.append(
                    {"image": img, "truth": [key[0]], "dose": dose, "kind": "single", "maps": False}
                )
    names = list(PHASE_ZONES)
    for dose in doses:
        for _ in range(args.mixed):
            a, b = rng.choice(len(names), 2, replace=False)
            ka = [k for k in keys if k[0] == names[a]][int(rng.integers(len(PHASE_ZONES[names[a]])))]
            kb = [k for k in keys if k[0] == names[b]][int(rng.integers(len(PHASE_ZONES[names[b]])))]
            m1, m2 = _halves(shape, rng.uniform(0, np.pi))
            img, _ = compose(tiles, [(ka, m1), (kb, m2)], shape, dose, rng)
            frames.append(
                {
                    "image": img,
                    "truth": [ka[0], kb[0]],
                    "dose": dose,
                    "kind": "mixed",
                    "maps": True,
                    "masks": {ka[0]: m1, kb[0]: m2},
                }
            )
    print(f"{len(frames)} frames composed", flush=True)
    res = {
        "engine": engine,
        "machine": f"{platform.processor() or platform.machine()}, 2 CPU cores shared with other jobs "
        "(timings inflated by contention)",
        "pixel_size_nm": PIXEL_NM,
        "frame": list(shape),
        "doses_e_per_A2": doses,
        "tiles": {f"{k[0]} [{''.join(map(str, k[1]))}]": list(v[0].shape) for k, v in tiles.items()},
        "simulation_seconds": t_sim,
        "simulation_seconds_per_tile": SIM_SECONDS,
    }
    res["phase_id"] = score_frames(frames, detectors, list(PHASE_ZONES))
    for det in detectors:
        s = res["phase_id"][det]
        print(
            det,
            "F1",
            round(s["all"]["f1"], 3),
            "P",
            round(s["all"]["precision"], 3),
            "R",
            round(s["all"]["recall"], 3),
            "d err median %",
            s["d_error_percent"]["median"],
            flush=True,
        )
    # d precision with and without the Hann window (docs/tem.md, Known limits)
    res["d_error_percent_by_window_single_classical"] = window_d_error(frames, list(PHASE_ZONES))
    print("d error by window", res["d_error_percent_by_window_single_classical"], flush=True)
    from matsight.tem import evaluate

    res["detector_segmentation_heldout_synthetic_fft"] = evaluate(n=20 if args.quick else 40)
    if not args.no_timing:
        res["timing_2048"] = timing(tiles, detectors, args.movie, rng)
        print(json.dumps(res["timing_2048"], indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    example = next(f for f in frames if f["kind"] == "mixed" and f["dose"] == 1000.0)
    figures(res, tiles, args.out, example)
    (args.out / "tem_phase_id.json").write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {args.out / 'tem_phase_id.json'} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
