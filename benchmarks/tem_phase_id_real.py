"""Phase identification on real microscope frames of known crystals (the real-image test set).

Each frame is analysed twice with the default settings: with its crystal's phase added to the shipped ones
(Li, LiF, Li2O, Li2CO3), where the crystal must be named, and with the shipped phases alone, where nothing may
be named. Reported per frame: file, format, crystal and zone stated by its source, what matsight names (phase,
zone, figure of merit, fitted pixel-size scale, map area of the phase), the verdict with the shipped phases
alone, and the seconds per analysis. A frame without a lattice (rosettasciio's ``multi_signal.dm3``) and a
region without one (the support between gold particles) check that nothing is named and nothing mapped there.

Files: ``tests/data/microscope/`` (Berkeley EMD and hspy, in the repository), ``../shared/data/tem/``
(FEI TIA, optional) and two frames of temul-toolkit 0.1.9's example data (Gatan DM3, Velox EMD),
downloaded once with ``pip download temul-toolkit==0.1.9`` and cached under ``~/.cache/matsight/tem_real/``
(``MATSIGHT_CACHE`` moves it). Origins and licences: ``tests/data/microscope/README.md``.

Usage: ``MATSIGHT_THREADS=1 python benchmarks/tem_phase_id_real.py [--out benchmarks/results]``
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "tests" / "data" / "microscope"
PHASES = ROOT / "tests" / "tem" / "data"
SHARED = ROOT.parent / "shared" / "data" / "tem"
CACHE = Path(os.environ.get("MATSIGHT_CACHE", Path.home() / ".cache" / "matsight")) / "tem_real"
WHEEL = "temul-toolkit==0.1.9"
WHEEL_FILES = ("example_Se_implanted_MoS2.dm3", "example_Au_nanoparticle.emd")
PX_ATOMAP = 0.009326270238006416  # the atomap files' scale; they store no unit

# name, path, format, crystal (source's words), phase file, pixel size (None: the file's), region
CASES = [
    ("Acquisition_18.emd", MICRO, "Berkeley EMD (NCEM TEAM 0.5)", "SrTiO3 [001], HAADF", "SrTiO3", None),
    ("test_ADF_cropped.hspy", MICRO, "HyperSpy hspy (atomap)", "SrTiO3 [110], ADF", "SrTiO3", PX_ATOMAP),
    ("test_ABF_cropped.hspy", MICRO, "HyperSpy hspy (atomap)", "SrTiO3 [110], ABF", "SrTiO3", PX_ATOMAP),
    ("16_STOimage.emi", SHARED, "FEI TIA (emi/ser)", "SrTiO3 [001], HAADF", "SrTiO3", None),
    ("example_Se_implanted_MoS2.dm3", CACHE, "Gatan DM3", "monolayer MoS2 [001], ADF", "MoS2", None),
    ("example_Au_nanoparticle.emd", CACHE, "Velox EMD (Thermo Fisher)", "Au particles, HAADF", "Au", None),
]
# frames and regions without a lattice: (file, folder, region or None for the whole frame)
NO_LATTICE = [
    ("multi_signal.dm3", MICRO, None),
    ("example_Au_nanoparticle.emd", CACHE, (slice(1150, 1450), slice(0, 1000))),
]


def fetch_wheel_files():
    """Cache the temul-toolkit example frames (one ``pip download`` of the wheel); False when offline."""
    if all((CACHE / f).exists() for f in WHEEL_FILES):
        return True
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", tmp]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            print(f"could not download {WHEEL}; its frames are skipped", flush=True)
            return False
        whl = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(whl) as z:
            for f in WHEEL_FILES:
                (CACHE / f).write_bytes(z.read(f"temul/example_data/experimental/{f}"))
    return True


def _best(res):
    if not res.match.grains:
        return None
    g = max(res.match.grains, key=lambda g: g["merit"]["merit"])
    return {
        "phase": g["phase"],
        "zone": list(g["zone"]),
        "merit": g["merit"]["merit"],
        "spots": len(g["spots"]),
    }


def analyse_case(name, folder, fmt, crystal, phase, ps):
    """One frame: with its phase among the shipped ones, and with the shipped ones alone."""
    from matsight.tem.crystals import builtin_phase_names
    from matsight.tem.predict import analyze_file

    path = folder / name
    t = time.perf_counter()
    own, _ = analyze_file(path, pixel_size=ps, phases=[str(PHASES / f"{phase}.yaml"), *builtin_phase_names()])
    seconds = time.perf_counter() - t
    alone, _ = analyze_file(path, pixel_size=ps, maps=False)
    area = own.maps.area_fraction.get(phase) if own.maps is not None else None
    return {
        "file": name,
        "format": fmt,
        "crystal": crystal,
        "expected": phase,
        "pixel_size_nm": [float(p) for p in own.pixel_size_nm],
        "pixel_size_source": own.calibration_source or "pixel_size=",
        "shape": list(own.shape),
        "named": own.phases_found,
        "best": _best(own),
        "scale": float(own.match.scale),
        "verdict": own.match.verdict(own.pixel_size_nm),
        "map_area_fraction": None if area is None else float(area),
        "named_with_shipped_phases_only": alone.phases_found,
        "verdict_shipped_only": alone.match.verdict(alone.pixel_size_nm),
        "seconds": seconds,
        "pass": own.phases_found == [phase] and alone.phases_found == [],
        # a phase that is not in the frame, named with or without the right one among the phases
        "wrong_phase_named": sorted({p for p in own.phases_found + alone.phases_found if p != phase}),
    }


def no_lattice(name, folder, box):
    """A frame (or region) without a lattice: nothing may be named, at most 5 % mapped."""
    from matsight.io import read_microscope
    from matsight.tem.crystals import builtin_phase_names
    from matsight.tem.predict import analyze

    im = read_microscope(folder / name)
    data = np.asarray(im.data, float)
    data = data if box is None else data[box]
    phases = [str(PHASES / "Au.yaml"), *builtin_phase_names()]
    res = analyze(data, im.pixel_size_nm, phases)
    mapped = float(sum(res.maps.area_fraction.values()))
    return {
        "file": name,
        "region_rows_cols": None if box is None else [[b.start, b.stop] for b in box],
        "named": res.phases_found,
        "spots": len(res.spots),
        "mapped_fraction": mapped,
        "pass": res.phases_found == [] and mapped <= 0.05,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    fetch_wheel_files()  # when offline, the cached frames are skipped
    rows = []
    for case in CASES:
        if not (case[1] / case[0]).exists():
            print(f"{case[0]}: not present, skipped", flush=True)
            continue
        rows.append(analyse_case(*case))
        r = rows[-1]
        print(f"{r['file']}: {r['verdict']} | shipped only: {r['verdict_shipped_only']}", flush=True)
    out = {
        "command": "python benchmarks/tem_phase_id_real.py",
        "machine": f"{platform.processor() or platform.machine()}, 2 CPU cores shared with other jobs",
        "threads": os.environ.get("MATSIGHT_THREADS", ""),
        "frames": rows,
        "no_lattice": [no_lattice(*c) for c in NO_LATTICE if (c[1] / c[0]).exists()],
    }
    out["passed"] = sum(r["pass"] for r in rows)
    out["frames_naming_a_wrong_phase"] = sum(bool(r["wrong_phase_named"]) for r in rows)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "tem_phase_id_real.json"
    path.write_text(json.dumps(out, indent=1))
    wrong = out["frames_naming_a_wrong_phase"]
    print(
        f"{out['passed']} of {len(rows)} frames pass, {wrong} name a wrong phase; "
        f"no lattice: {out['no_lattice']}; wrote {path}"
    )


if __name__ == "__main__":
    main()
