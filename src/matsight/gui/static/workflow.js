// matsight GUI · training pages (fuse, restore): job forms, live metric curves, run folders, slice viewer.
"use strict";

const WF = {};

// Values of a form's named inputs (checkboxes → booleans, empty → omitted).
WF.values = function (form) {
  const out = {};
  for (const e of MS.qa("[name]", form)) {
    if (e.type === "checkbox") out[e.name] = e.checked;
    else if (e.value !== "") out[e.name] = e.value;
  }
  return out;
};

// Start a job from a form (POST url) and follow it in the form's .progress and .msg; resolves with the final job.
WF.run = async function (form, url, extra, onUpdate) {
  const msg = MS.q(".msg", form);
  MS.say(msg, "");
  let job;
  try {
    job = await MS.post(url, Object.assign(WF.values(form), extra || {}));
  } catch (err) {
    MS.say(msg, err.message, "error");
    return null;
  }
  form.dataset.job = job.id;
  const bar = MS.progress(MS.q(".progress", form));
  job = await MS.pollJob(job.id, (j) => { bar(j); if (onUpdate) onUpdate(j); }, 700);
  if (job.state === "failed") MS.say(msg, job.error || "failed", "error");
  else if (job.state === "stopped") MS.say(msg, "stopped — press resume to continue from the last checkpoint", "info");
  return job;
};

// Live curves of a run folder's metrics.json: plots described by [{svg, keys: [[key, label]], ylabel, log}]
WF.curves = function (plots) {
  return function (history) {
    for (const p of plots) {
      let keys = p.keys;
      if (p.pattern) {
        const ks = [...new Set(history.flatMap((r) => Object.keys(r)))].filter((k) => p.pattern.test(k));
        keys = ks.map((k) => [k, p.label ? p.label(k) : k]);
      }
      // p.phase(key) → the phase label a curve belongs to: drawn in that phase's colour, as in the reports
      const colour = (k, i) => (p.phase ? MS.PHASE_COLOURS[p.phase(k) % MS.PHASE_COLOURS.length] : MS.COLORS[i % MS.COLORS.length]);
      const series = keys.map(([k, label], i) => ({
        name: label,
        color: colour(k, i),
        x: history.map((r) => (r.iteration !== undefined ? r.iteration : r.step)),
        y: history.map((r) => (r[k] === null || r[k] === undefined ? NaN : r[k])),
      }));
      MS.plot(p.svg, series, { xlabel: "iteration", ylabel: p.ylabel, log: p.log });
    }
  };
};

// A run-folder panel: curves + its volumes (click → viewer) + its HTML reports.
// A fuse run's status.json: the verdict (green: converged, amber: not), the gaps to the HR images per
// phase and the LR/HR phase-fraction warning.
WF.statusBox = function (box, st) {
  box.replaceChildren();
  if (!st) return;
  const kind = st.converged ? "ok" : (st.stopped_by ? "warn" : "info");
  box.append(MS.el("div", { class: "msg verdict " + kind, text: st.verdict }));
  const pct = (v) => (v === null || v === undefined ? "n/a" : (100 * v >= 0 ? "+" : "") + (100 * v).toFixed(0) + " %");
  const gaps = Object.entries(st.gaps || {});
  if (gaps.length) {
    const t = MS.el("table", { class: "gaps" }, MS.el("tr", {}, ...["phase", "VF (SR − HR)", "interfaces", "Euler density"].map((h) => MS.el("th", { text: h }))));
    for (const [p, g] of gaps) {
      t.append(MS.el("tr", {}, MS.el("td", { text: p }), MS.el("td", { text: (g.vf_gap >= 0 ? "+" : "") + g.vf_gap.toFixed(3) }),
        MS.el("td", { text: pct(g.interfaces_gap) }), MS.el("td", { text: pct(g.euler_gap) })));
    }
    const at = st.evaluated_iteration === null ? "" : ` at iteration ${st.evaluated_iteration}`;
    box.append(MS.el("div", { text: `slices vs the HR images${at}` }), t);
  }
  if (st.lr_consistency !== null && st.lr_consistency !== undefined) {
    box.append(MS.el("div", { class: "lrc", text: `LR consistency: ${(100 * st.lr_consistency).toFixed(2)} %` }));
  }
  if (st.inputs && st.inputs.warning) box.append(MS.el("div", { class: "msg warn fraction", text: st.inputs.warning }));
};

WF.runPanel = function (container, drawCurves, viewer) {
  const status = MS.el("div", { class: "runstatus" });
  const files = MS.el("div", { class: "runfiles" });
  container.append(status, files);
  const showStatus = (st) => WF.statusBox(status, st);
  let run = null;
  async function load(r) {
    if (r) run = r;
    if (!run) return null;
    let data;
    try {
      data = await MS.api("/api/run?run=" + encodeURIComponent(run));
    } catch (err) {
      files.replaceChildren(MS.el("div", { class: "msg error", text: err.message }));
      return null;
    }
    drawCurves(data.history);
    showStatus(data.status);
    const vols = data.volumes.map((v) => MS.el("li", {}, MS.el("a", { href: "#", text: v, class: "vol", onclick: (e) => { e.preventDefault(); viewer.open(v); } })));
    const reps = data.reports.map((v) => MS.el("li", {}, MS.el("a", { href: "/files/" + v, target: "_blank", text: v, class: "report" })));
    files.replaceChildren(
      MS.el("div", { text: `run folder ${data.run}: ${data.history.length} evaluations` }),
      MS.el("strong", { text: "volumes" }), MS.el("ul", {}, ...(vols.length ? vols : [MS.el("li", { text: "none yet" })])),
      MS.el("strong", { text: "reports" }), MS.el("ul", {}, ...(reps.length ? reps : [MS.el("li", { text: "none yet" })])));
    return data;
  }
  return { load, get run() { return run; } };
};

// Wire a training form: start / stop / resume buttons, live curves while it runs.
WF.trainForm = function (form, url, runPanel) {
  const start = MS.q(".start", form), stop = MS.q(".stop", form), resume = MS.q(".resume", form);
  let timer = null;
  async function go(isResume) {
    const runIn = MS.q("[name=run]", form);
    if (isResume && !runIn.value) {
      MS.say(MS.q(".msg", form), "choose the run folder to resume", "error");
      return;
    }
    start.disabled = resume.disabled = true;
    stop.classList.remove("hidden");
    let runSet = false;
    const job = await WF.run(form, url, { resume: true }, (j) => {
      if (!runSet && j.run_dir) { runIn.value = j.run_dir; runSet = true; runPanel.load(j.run_dir); }
    });
    start.disabled = resume.disabled = false;
    stop.classList.add("hidden");
    if (job && job.run_dir) await runPanel.load(job.run_dir);
    return job;
  }
  timer = setInterval(() => { if (form.dataset.job && MS.q(".progress", form).dataset.state === "running") runPanel.load(); }, 2000);
  start.addEventListener("click", () => go(false));
  resume.addEventListener("click", () => go(true));
  stop.addEventListener("click", () => form.dataset.job && MS.post(`/api/jobs/${form.dataset.job}/stop`));
  return { go };
};
