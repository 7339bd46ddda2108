"""Where a SuperRes run stands: is the score still falling, how close are its slices to the HR images.

Pure functions over the training history (the records of ``metrics.json``) and the inputs, used by
:func:`matsight.fuse.train` to write ``status.json`` and the last lines of its log:

- :func:`score_trend`: a plateau test on the score history, robust to the GAN's noise;
- :func:`phase_gaps`: the gap of the slices' volume fraction, interfaces (boundary density) and Euler
  density to the HR images', per phase;
- :func:`fraction_check`: whether the LR phase fractions match those of the HR phases they map to (a
  mismatch the generator cannot resolve: see its docstring);
- :func:`run_status` and :func:`status_lines`: the whole verdict, as JSON and as sentences.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fraction_check", "phase_gaps", "run_status", "score_trend", "status_lines"]

TOLERANCE = 0.05  # |LR fraction − HR fraction| above which the inputs are reported as mismatched


# ---------------------------------------------------------------------------------------------- the score
def score_trend(scores, *, window=8, min_window=4, z=2.5, min_drop=0.02):
    """Whether a score history (lower is better) is still falling, flat or rising.

    The rule: the last ``2·w`` evaluations, ``w = min(window, n // 2)``, are split into a previous and a
    recent window, and the change ``median(recent) − median(previous)`` is compared with a threshold

        ``max(z · 1.2533 · σ · sqrt(2 / w),  min_drop · |median(previous)|)``

    where ``σ = 1.4826 · MAD(successive differences) / sqrt(2)`` is the score's scatter between
    evaluations, over the last ``4·w`` of them at most (differences cancel a slow trend; the median
    absolute deviation ignores single spikes), and
    ``1.2533 · σ · sqrt(2 / w)`` the standard error of a difference of two medians of ``w`` values. A change
    below ``−threshold`` is ``"falling"``, above ``+threshold`` ``"rising"``, anything else ``"plateau"``:
    the windows' medians differ by less than the noise can explain, or by less than ``min_drop`` (2%) of
    the score. Medians, not means, so that the GAN's occasional bad evaluation does not decide.

    Parameters
    ----------
    scores : sequence of float
        The score of every evaluation, oldest first (``None``/NaN entries are skipped).
    window : int
        Largest window ``w`` (default 8: the last 16 evaluations are compared).
    min_window : int
        Smallest window: with fewer than ``2 · min_window`` evaluations the answer is ``"too_few"``.
    z : float
        Threshold in standard errors (2.5: a flat noisy history of 24 evaluations is called falling or
        rising about once in 50, simulated).
    min_drop : float
        Smallest relative change of the median that counts.

    Returns
    -------
    dict
        ``trend`` (``"falling"``, ``"plateau"``, ``"rising"`` or ``"too_few"``), ``evaluations``,
        ``needed`` (evaluations the test needs), and, when tested, ``window``, ``previous_median``,
        ``recent_median``, ``change``, ``threshold`` and ``scatter`` (``σ``).
    """
    s = np.array([float(v) for v in scores if v is not None and math.isfinite(float(v))], dtype=float)
    n, needed = len(s), 2 * min_window
    out = {"trend": "too_few", "evaluations": n, "needed": needed}
    w = min(window, n // 2)
    if w < min_window:
        return out
    last = s[-2 * w :]
    prev, recent = float(np.median(last[:w])), float(np.median(last[w:]))
    diffs = np.diff(s[-4 * w :])  # the scatter from up to 4·w evaluations: a steadier estimate
    sigma = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2)
    threshold = max(z * 1.2533 * sigma * math.sqrt(2 / w), min_drop * abs(prev))
    change = recent - prev
    trend = "falling" if change < -threshold else "rising" if change > threshold else "plateau"
    out.update(
        trend=trend,
        window=w,
        previous_median=prev,
        recent_median=recent,
        change=change,
        threshold=threshold,
        scatter=sigma,
    )
    return out


# ---------------------------------------------------------------------------------------------- the slices
def _hr_mean(hr_ref):
    """``(vf, sa, eu)`` of the HR images, averaged over the stacks (the x, y, z planes if anisotropic)."""
    return [np.mean([np.asarray(ref[k], dtype=float) for ref in hr_ref], 0) for k in range(3)]


def _relative(value, ref):
    return None if abs(ref) < 1e-12 else value / ref - 1.0


def phase_gaps(record, hr_ref):
    """Per phase, the evaluation ``record``'s slice metrics beside the HR images' and their gap.

    Parameters
    ----------
    record : dict
        One evaluation of the history: ``vf0``, ``sa0``, ``eu0``, ... (generated slices, all three axes).
    hr_ref : list of (vf, sa, eu)
        The HR images' values (:func:`matsight.fuse.train.slice_metrics` of each stack;
        ``hr_reference.json``).

    Returns
    -------
    dict of str to dict
        ``{"0": {"vf", "vf_hr", "vf_gap", "interfaces", "interfaces_hr", "interfaces_gap", "euler",
        "euler_hr", "euler_gap"}, ...}``: ``vf_gap`` = SR − HR (fraction points); the interface
        (boundary density) and Euler density gaps are relative, SR / HR − 1 (None when the HR value is 0).
    """
    vf_hr, sa_hr, eu_hr = _hr_mean(hr_ref)
    out = {}
    for p in range(len(vf_hr)):
        if f"vf{p}" not in record:
            continue
        vf, sa, eu = record[f"vf{p}"], record[f"sa{p}"], record.get(f"eu{p}")
        row = {"vf": vf, "vf_hr": float(vf_hr[p]), "vf_gap": vf - float(vf_hr[p])}
        row.update(interfaces=sa, interfaces_hr=float(sa_hr[p]), interfaces_gap=_relative(sa, sa_hr[p]))
        if eu is not None:
            row.update(euler=eu, euler_hr=float(eu_hr[p]), euler_gap=_relative(eu, eu_hr[p]))
        out[str(p)] = row
    return out


# ---------------------------------------------------------------------------------------------- the inputs
def _implication(rows, material_only):
    if not material_only:
        return (
            "The voxel-wise loss holds the SR volume, degraded, to the LR voxels, so the SR will follow the "
            "LR's fractions (up to what fits inside its voxels' boundaries) and its slices will look "
            "different from the HR images: their fractions stay about that far from the HR images', the "
            "critics keep pulling the other way, and the score cannot fall below roughly the sum of the "
            "differences. Check that both images were segmented alike (thresholds) and show the same "
            "material."
        )
    more = [r for r in rows if r["lr_phase"] > 0 and r["delta"] > TOLERANCE]
    return (
        "The voxel-wise loss (material only) keeps the LR's material as material but lets the SR add "
        "material where the LR shows pore: "
        + (
            "where the HR images hold more material the SR can follow them, where they hold less it follows "
            "the LR."
            if more
            else "the HR images hold less material, so the SR will follow the LR's fractions and its slices "
            "will look different from the HR images."
        )
    )


def fraction_check(lr, stacks, compare, n_hr, *, tolerance=TOLERANCE, material_only=False):
    """The LR phase fractions beside those of the HR phases they map to, and a warning if they differ.

    LR phase ``i >= 1`` maps to HR phase ``compare[i-1]``; LR phase 0 (pore) to HR pore and every HR phase
    not compared (those the LR technique cannot tell from pore, e.g. NMC binder in XCT). The HR fractions
    are the mean over the HR stacks.

    Parameters
    ----------
    lr : ndarray
        LR label volume.
    stacks : list of ndarray
        The HR label stacks ``(N, H, W)``.
    compare : list of int
        HR phase of each LR phase after pore (``FuseConfig.lr_channels[1:]``).
    n_hr : int
        Number of HR phases.
    tolerance : float
        Largest accepted ``|HR − LR|`` fraction per phase.
    material_only : bool
        The run's voxel-wise loss counts material only (separator mode), which changes what a mismatch
        implies.

    Returns
    -------
    dict
        ``phases``: ``[{"lr_phase", "hr_phases", "lr", "hr", "delta"}]`` (``delta`` = HR − LR),
        ``tolerance``, ``mismatch`` (bool) and ``warning`` (the sentence to show, or None).
    """
    lr = np.asarray(lr)
    lr_frac = np.bincount(lr.ravel(), minlength=len(compare) + 1) / lr.size
    hr_frac = np.mean(
        [np.bincount(np.asarray(s).ravel(), minlength=n_hr)[:n_hr] / np.asarray(s).size for s in stacks], 0
    )
    groups = [[p for p in range(n_hr) if p not in compare], *[[int(c)] for c in compare]]
    rows = []
    for i, g in enumerate(groups):
        f_lr, f_hr = float(lr_frac[i]), float(hr_frac[g].sum())
        rows.append({"lr_phase": i, "hr_phases": g, "lr": f_lr, "hr": f_hr, "delta": f_hr - f_lr})
    bad = [r for r in rows if abs(r["delta"]) > tolerance]
    warning = None
    if bad:
        parts = "; ".join(
            f"LR phase {r['lr_phase']} (HR phase{'s' if len(r['hr_phases']) > 1 else ''} "
            f"{', '.join(map(str, r['hr_phases']))}): {r['lr']:.3f} in the LR volume, {r['hr']:.3f} in the "
            "HR images"
            for r in bad
        )
        warning = (
            f"the LR volume's phase fractions differ from those of the HR phases they map to by more than "
            f"{tolerance:g}: {parts}. {_implication(rows, material_only)}"
        )
    return {"phases": rows, "tolerance": tolerance, "mismatch": bool(bad), "warning": warning}


# ---------------------------------------------------------------------------------------------- the verdict
def _record(history, iteration):
    """The evaluation at ``iteration`` (the best one, which generation uses), else the latest one."""
    for r in history:
        if iteration is not None and r.get("iteration") == iteration:
            return r
    return history[-1] if history else None


def _resume_advice(stopped_by, iteration):
    if stopped_by == "steps":
        return f"resume with the same command and more --steps, e.g. --steps {max(2 * iteration, 100)}"
    return "resume with the same command"


def _verdict(trend, stopped_by, iteration, best, metrics_every):
    """``(converged, verdict sentence)`` of a run stopped by ``stopped_by`` (None: still training)."""
    t = trend["trend"]
    if t == "plateau":
        return True, f"converged: the score has stopped falling (generation uses iteration {best})"
    if stopped_by is None:
        return False, "training"
    head = f"not converged — train longer ({_resume_advice(stopped_by, iteration)})"
    if t == "too_few":
        every = f", one every {metrics_every} iterations" if metrics_every else ""
        return False, (
            f"{head}: too few evaluations to tell ({trend['evaluations']}; the plateau test needs "
            f"{trend['needed']}{every})"
        )
    if t == "rising":
        return False, f"{head}: the score is rising; generation uses the best so far (iteration {best})"
    return False, head


#: the best checkpoint agreeing with the LR this much less than the latest evaluation is worth a line
LR_TRADE = 0.05


def _best_vs_latest(best, latest):
    """The best checkpoint's LR agreement beside the latest evaluation's, when the score traded it away."""
    if best is None or latest is None or best is latest:
        return None
    a, b = best.get("lr_agreement"), latest.get("lr_agreement")
    if a is None or b is None or b - a <= LR_TRADE:
        return None
    its = {"best_iteration": best["iteration"], "latest_iteration": latest["iteration"]}
    return {**its, "best": a, "latest": b}


def run_status(history, hr_ref, *, best_iteration=None, stopped_by=None, metrics_every=None, inputs=None):
    """Where a run stands: the score's trend, the LR consistency and the gaps to the HR images.

    Parameters
    ----------
    history : list of dict
        The evaluations (``metrics.json``): ``iteration``, ``score``, ``lr_agreement``, ``vf0``, ...
    hr_ref : list of (vf, sa, eu)
        The HR images' slice metrics (``hr_reference.json``).
    best_iteration : int, optional
        The evaluation kept as ``best.safetensors``; its LR consistency and gaps are reported (generation
        uses it); else the latest evaluation's.
    stopped_by : {"steps", "budget", None}
        What ended the run (None: still training); decides the advice to resume.
    metrics_every : int, optional
        Iterations between evaluations, for the advice.
    inputs : dict, optional
        :func:`fraction_check` of the run's inputs.

    Returns
    -------
    dict
        JSON-able: ``converged`` (bool), ``verdict`` (sentence), ``iteration``, ``stopped_by``,
        ``score_trend`` (:func:`score_trend`), ``evaluated_iteration``, ``lr_consistency``, ``gaps``
        (:func:`phase_gaps`), ``inputs`` and ``best_vs_latest`` (the best and latest evaluations' LR
        agreement when the latest's is higher by more than :data:`LR_TRADE`, else None).
    """
    trend = score_trend([r.get("score") for r in history])
    rec = _record(history, best_iteration)
    iteration = history[-1]["iteration"] if history else 0
    converged, verdict = _verdict(trend, stopped_by, iteration, best_iteration, metrics_every)
    latest = history[-1] if history else None
    return {
        "best_vs_latest": _best_vs_latest(rec, latest),
        "converged": converged,
        "verdict": verdict,
        "iteration": iteration,
        "stopped_by": stopped_by,
        "score_trend": trend,
        "evaluated_iteration": None if rec is None else rec.get("iteration"),
        "lr_consistency": None if rec is None else rec.get("lr_agreement"),
        "gaps": {} if rec is None else phase_gaps(rec, hr_ref),
        "inputs": inputs,
    }


def _trend_line(t):
    if t["trend"] == "too_few":
        return (
            f"score: too few evaluations to tell whether it still falls ({t['evaluations']}; the plateau "
            f"test needs {t['needed']})"
        )
    what = {"falling": "still falling", "plateau": "flat (plateau)", "rising": "rising"}[t["trend"]]
    return (
        f"score: {what} (median {t['previous_median']:.4f} → {t['recent_median']:.4f} over the last "
        f"2×{t['window']} evaluations; a change under {t['threshold']:.4f} counts as flat)"
    )


def _pct(v):
    return "n/a" if v is None else f"{100 * v:+.0f}%"


def status_lines(status):
    """The status of :func:`run_status` as the lines a log or terminal shows, the verdict last."""
    lines = [_trend_line(status["score_trend"])]
    it = status["evaluated_iteration"]
    if status["lr_consistency"] is not None:
        lines.append(
            f"LR consistency (degraded SR = LR) at iteration {it}: {100 * status['lr_consistency']:.2f}%"
        )
    if status["gaps"]:
        parts = [
            f"phase {p}: VF {g['vf_gap']:+.3f}, interfaces {_pct(g['interfaces_gap'])}"
            + (f", Euler density {_pct(g['euler_gap'])}" if "euler_gap" in g else "")
            for p, g in status["gaps"].items()
        ]
        lines.append(f"slices vs the HR images at iteration {it} (SR − HR): {'; '.join(parts)}")
    inputs = status.get("inputs")
    if inputs and inputs.get("mismatch"):
        worst = max(abs(r["delta"]) for r in inputs["phases"])
        lines.append(
            f"inputs: LR and HR phase fractions differ by up to {worst:.2f} (see the warning before "
            "training): the VF gaps come from the inputs, more training will not close them"
        )
    trade = status.get("best_vs_latest")
    if trade:
        lines.append(
            f"the best checkpoint (iteration {trade['best_iteration']}, which generation uses) agrees "
            f"with the LR on {100 * trade['best']:.1f}% of voxels, the latest evaluation (iteration "
            f"{trade['latest_iteration']}) on {100 * trade['latest']:.1f}%: the score preferred slices "
            "closer to the HR images; to generate from the latest state, give RUN/last.safetensors"
        )
    lines.append(status["verdict"])
    return lines
