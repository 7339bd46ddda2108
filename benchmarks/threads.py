"""Training speed against torch's thread count, on an idle machine and beside busy processes.

Why: torch takes every core by default; when other processes hold some, its intra-op threads wait on each
other at every operation. This measures a training step of the size of restore's ``cpu`` preset (a 2D conv
net, batch 8 of 64² crops) with 1…all threads, alone and next to ``--busy`` processes that each spin one core.
``matsight.nn.device.default_threads`` (the cores the load average leaves free) is chosen from these figures.

    python benchmarks/threads.py                 # 0, 1 and 2 busy processes, 1 and 2 threads
    python benchmarks/threads.py --busy 0 --seconds 20

Results: ``benchmarks/results/threads.json`` (medians of ``--repeats`` timed windows).
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

CHILD = r"""
import sys, time, torch
threads, seconds = int(sys.argv[1]), float(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.SiLU(),
    torch.nn.Conv2d(32, 64, 3, padding=1, stride=2), torch.nn.SiLU(),
    torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.SiLU(),
    torch.nn.ConvTranspose2d(64, 32, 2, stride=2), torch.nn.SiLU(),
    torch.nn.Conv2d(32, 1, 3, padding=1),
)
opt = torch.optim.Adam(net.parameters(), 1e-3)
x = torch.randn(8, 1, 64, 64)
def step():
    opt.zero_grad(); loss = (net(x) - x).square().mean(); loss.backward(); opt.step()
for _ in range(3):
    step()
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    step(); n += 1
print(n / (time.perf_counter() - t0))
"""


def _spin(stop):
    while not stop.is_set():
        pass


def steps_per_second(threads, seconds):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads), str(seconds)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="busy processes beside it")
    ap.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default 1..cores)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of one timed window")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "threads.json")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    thread_counts = args.threads or list(range(1, cores + 1))
    rows = []
    for busy in args.busy:
        stop = mp.Event()
        spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
        for p in spinners:
            p.start()
        time.sleep(min(5.0, args.seconds))  # let the load average see them a little
        try:
            row = {"busy_processes": busy, "load_1min": os.getloadavg()[0]}
            for t in thread_counts:
                runs = [steps_per_second(t, args.seconds) for _ in range(args.repeats)]
                row[f"steps_per_s_{t}_threads"] = statistics.median(runs)
                print(f"busy {busy}, {t} threads: {statistics.median(runs):.2f} steps/s  {runs}", flush=True)
            rows.append(row)
        finally:
            stop.set()
            for p in spinners:
                p.join()
    record = {
        "benchmark": "threads",
        "command": "python benchmarks/threads.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {cores} cores",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
