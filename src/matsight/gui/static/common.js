// matsight GUI: shared helpers (API calls, job polling, file picker, SVG line plots, slice viewer).
// Plain browser JavaScript, no build step. Untrusted text (file names, messages) always goes through textContent.
"use strict";

const MS = {};

MS.el = function (tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "style") e.style.cssText = v; // CSSOM: the pages' CSP refuses style attributes
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
};

MS.api = async function (path, opts) {
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (err) {
    throw new Error("the matsight server does not answer (" + err.message + "); is `matsight gui` still running?");
  }
  const type = resp.headers.get("content-type") || "";
  const data = type.includes("json") ? await resp.json() : null;
  if (!resp.ok) throw new Error((data && data.error) || "request failed with HTTP " + resp.status);
  return data;
};

MS.post = function (path, body) {
  return MS.api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Matsight": "1" },
    body: JSON.stringify(body || {}),
  });
};

MS.q = (sel, root) => (root || document).querySelector(sel);
MS.qa = (sel, root) => Array.from((root || document).querySelectorAll(sel));

// message box: kind = "error" | "info" | "" (hidden)
MS.say = function (box, text, kind) {
  if (typeof box === "string") box = MS.q(box);
  box.textContent = text || "";
  box.className = "msg " + (text ? kind || "info" : "hidden");
};

MS.sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll a job until it is finished; onUpdate(job) on every poll. Resolves with the final job.
MS.pollJob = async function (id, onUpdate, interval) {
  for (;;) {
    const job = await MS.api("/api/jobs/" + encodeURIComponent(id));
    if (onUpdate) onUpdate(job);
    if (["done", "failed", "stopped"].includes(job.state)) return job;
    await MS.sleep(interval || 400);
  }
};

// A progress bar + state line bound to a job.
MS.progress = function (container) {
  const bar = MS.el("progress", { max: "1", value: "0", class: "bar" });
  const line = MS.el("span", { class: "state" });
  container.replaceChildren(bar, line);
  container.classList.remove("hidden");
  return function (job) {
    if (job.progress === null || job.progress === undefined) bar.removeAttribute("value");
    else bar.value = job.progress;
    const pct = job.progress === null || job.progress === undefined ? "" : " " + Math.round(100 * job.progress) + " %";
    line.textContent = job.state + pct + (job.message ? " — " + job.message : "") + " (" + job.elapsed_s.toFixed(1) + " s)";
    container.dataset.state = job.state;
  };
};

// ------------------------------------------------------------------------------------------ file picker
// <input data-pick="file|dir"> gets a "browse" button that lists the data folder.
MS.picker = (function () {
  let dialog, list, here, target, mode;
  async function show(path) {
    let data;
    try {
      data = await MS.api("/api/ls?path=" + encodeURIComponent(path || "."));
    } catch (err) {
      MS.say(MS.q("#picker-msg"), err.message, "error");
      return;
    }
    MS.say(MS.q("#picker-msg"), "");
    here.textContent = data.path === "." ? "(data folder)" : data.path;
    list.replaceChildren();
    if (data.path !== ".") {
      const up = data.path.includes("/") ? data.path.slice(0, data.path.lastIndexOf("/")) : ".";
      list.append(MS.el("li", { class: "dir", text: "⬑ ..", onclick: () => show(up) }));
    }
    for (const e of data.entries) {
      const li = MS.el("li", { class: e.dir ? "dir" : "file", text: (e.dir ? "📁 " : "") + e.name, "data-path": e.path });
      li.addEventListener("click", () => {
        if (e.dir) show(e.path);
        else choose(e.path);
      });
      if (e.dir && mode === "dir") {
        li.append(MS.el("button", { class: "small", text: "choose", onclick: (ev) => { ev.stopPropagation(); choose(e.path); } }));
      }
      list.append(li);
    }
    dialog.dataset.path = data.path;
  }
  function choose(path) {
    target.value = path;
    target.dispatchEvent(new Event("change"));
    dialog.classList.add("hidden");
  }
  function init() {
    dialog = MS.el("div", { id: "picker", class: "picker hidden" });
    here = MS.el("div", { class: "here" });
    list = MS.el("ul", { class: "entries" });
    const close = MS.el("button", { text: "close", onclick: () => dialog.classList.add("hidden") });
    const pickHere = MS.el("button", { text: "choose this folder", id: "picker-here",
      onclick: () => choose(dialog.dataset.path) });
    dialog.append(MS.el("h3", { text: "Data folder" }), here, MS.el("div", { id: "picker-msg", class: "msg hidden" }), list,
      MS.el("div", { class: "row" }, pickHere, close));
    document.body.append(dialog);
    for (const input of MS.qa("input[data-pick]")) {
      const b = MS.el("button", { type: "button", class: "small browse", text: "browse…" });
      b.addEventListener("click", () => {
        target = input;
        mode = input.dataset.pick;
        pickHere.classList.toggle("hidden", mode !== "dir");
        dialog.classList.remove("hidden");
        const v = input.value;
        show(v && v.includes("/") ? v.slice(0, v.lastIndexOf("/")) : ".");
      });
      input.after(b);
    }
  }
  return { init };
})();

// ------------------------------------------------------------------------------------------ SVG line plot
// series: [{name, color, x: [...], y: [...]}]; opts: {xlabel, ylabel, log}. The legend is below the axes, never
// over the lines: two columns when there are more than three series.
MS.plot = function (svg, series, opts) {
  opts = opts || {};
  const NS = "http://www.w3.org/2000/svg";
  const W = 460, H = 260, L = 58, R = 10, T = 10, B = 38;
  const cols = series.length > 3 ? 2 : 1, rows = Math.ceil(series.length / cols);
  svg.setAttribute("viewBox", `0 0 ${W} ${H + (rows ? rows * 14 + 6 : 0)}`);
  svg.replaceChildren();
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  const tf = (v) => (opts.log ? (v > 0 ? Math.log10(v) : NaN) : v);
  const xs = [], ys = [];
  for (const s of series) {
    s.x.forEach((x, i) => {
      const y = tf(s.y[i]);
      if (Number.isFinite(x) && Number.isFinite(y)) { xs.push(x); ys.push(y); }
    });
  }
  if (!xs.length) {
    mk("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no data yet");
    return;
  }
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  mk("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "frame" });
  const fmt = (v) => (opts.log ? +(10 ** v).toPrecision(2) : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(1) : +v.toPrecision(3));
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4, xv = x0 + ((x1 - x0) * i) / 4;
    mk("text", { x: L - 4, y: py(yv) + 4, "text-anchor": "end", class: "tick" }, fmt(yv));
    mk("text", { x: px(xv), y: H - B + 14, "text-anchor": "middle", class: "tick" }, +xv.toPrecision(4));
  }
  mk("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "label" }, opts.xlabel || "");
  mk("text", { x: 12, y: (T + H - B) / 2, transform: `rotate(-90 12 ${(T + H - B) / 2})`, "text-anchor": "middle", class: "label" },
    (opts.ylabel || "") + (opts.log ? " (log)" : ""));
  let k = 0;
  for (const s of series) {
    const pts = [];
    s.x.forEach((x, i) => {
      const y = tf(s.y[i]);
      if (Number.isFinite(x) && Number.isFinite(y)) pts.push(`${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    });
    if (!pts.length) continue;
    mk("polyline", { points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 1.6, class: "line", "data-name": s.name });
    if (pts.length < 40) for (const p of pts) { const [cx, cy] = p.split(","); mk("circle", { cx, cy, r: 2, fill: s.color }); }
    const lx = L + (k % cols) * ((W - L - R) / cols), ly = H + 10 + Math.floor(k / cols) * 14;
    mk("line", { x1: lx, x2: lx + 16, y1: ly - 4, y2: ly - 4, stroke: s.color, "stroke-width": 2, class: "key" });
    mk("text", { x: lx + 20, y: ly, class: "legend" }, s.name);
    k += 1;
  }
};

// matplotlib's default cycle, as the reports' line plots
MS.COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
// one colour per phase label, as in every matsight figure (matsight.report.style.PHASE_COLOURS; a test checks)
MS.PHASE_COLOURS = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"];

// ------------------------------------------------------------------------------------------ slice viewer
// Orthogonal slices of the volumes in the data folder, side by side (LR, SR, HR, uncertainty, ...): each panel
// scaled to its width with nearest-neighbour pixels, a key of the label colours, its own slider. With "link
// slices" a slider moves every panel to the same physical position: the slice's centre at the same fraction
// of each volume's extent, i.e. the index scaled by the volumes' size ratio (the scale factor of LR → SR).
// The largest 1, 2 or 5 × 10ⁿ not above x (the reports' scale-bar lengths, report.style.nice_length).
MS.scaleBarBox = () => MS.el("div", { class: "scalebar" }, MS.el("div", { class: "bar" }), MS.el("div", { class: "text" }));

MS.niceLength = function (x) {
  const e = Math.floor(Math.log10(x));
  for (const m of [5, 2, 1]) if (m * 10 ** e <= x * (1 + 1e-9)) return m * 10 ** e;
  return 10 ** e;
};

// A scale bar over an image: about 1/5 of its width, in ``unit`` when the pixel size ``size`` (in that unit)
// is known, else in pixels. ``bar``: a div.scalebar holding div.bar and div.text.
MS.scaleBar = function (bar, img, size, unit) {
  const shown = img.getBoundingClientRect().width, natural = img.naturalWidth;
  if (!shown || !natural) return;
  unit = size ? unit || "nm" : "px";
  size = size || 1;
  const length = MS.niceLength((natural * size) / 5);
  bar.querySelector(".bar").style.width = ((length / size) * shown) / natural + "px";
  bar.querySelector(".text").textContent = `${+length.toPrecision(3)} ${unit}`;
  bar.dataset.length = length;
  bar.dataset.unit = unit;
};

MS.SliceViewer = function (container, opts) {
  const MAX = (opts && opts.max) || 4;
  const pathIn = MS.el("input", { type: "text", class: "path", placeholder: "volume (tif/npy/zarr)", "data-pick": "file" });
  const openB = MS.el("button", { text: "view", class: "view", title: "add a panel with this volume" });
  const axisSel = MS.el("select", { class: "axis" },
    MS.el("option", { value: "0", text: "z (xy slices)" }), MS.el("option", { value: "1", text: "y (xz slices)" }),
    MS.el("option", { value: "2", text: "x (yz slices)" }));
  const cmapSel = MS.el("select", { class: "cmap" }, ...["auto", "gray", "labels", "viridis", "magma"].map((c) => MS.el("option", { value: c, text: c })));
  const link = MS.el("input", { type: "checkbox", class: "link", checked: true });
  const msg = MS.el("div", { class: "msg hidden" });
  const grid = MS.el("div", { class: "vpanels" });
  container.append(MS.el("div", { class: "row" }, pathIn), MS.el("div", { class: "row" }, openB, axisSel, cmapSel,
    MS.el("label", { class: "inline" }, link, " link slices")), msg, grid);
  const panels = [];
  const count = (p) => (p.meta.shape.length === 3 ? p.meta.shape[+axisSel.value] : 1);
  const is3d = (p) => p.meta.shape.length === 3;
  // voxel size (nm) along the slicing axis, and along the slice's horizontal axis (x; y for yz slices)
  const sp = (p, axis) => (p.meta.spacing && p.meta.spacing[axis]) || null;
  const across = (p) => sp(p, is3d(p) ? (+axisSel.value === 2 ? 1 : 2) : 1);

  function legend(p) {
    const labels = cmapSel.value === "labels" || (cmapSel.value === "auto" && p.meta.labels);
    p.legend.replaceChildren();
    p.legend.classList.toggle("hidden", !labels || !p.meta.legend.length);
    if (!labels) return;
    for (const e of p.meta.legend) {
      const sw = MS.el("span", { class: "swatch" });
      sw.style.background = e.colour; // CSSOM, as MS.el's style (the CSP refuses style attributes)
      p.legend.append(MS.el("span", { class: "key", "data-label": e.label }, sw, String(e.label)));
    }
  }
  function draw(p) {
    const n = count(p);
    p.idx.textContent = `${+p.slider.value + 1} / ${n}`;
    const q = new URLSearchParams({ path: p.meta.path, axis: axisSel.value, index: p.slider.value });
    if (cmapSel.value !== "auto") q.set("cmap", cmapSel.value);
    p.img.src = "/api/volume/slice?" + q.toString();
    legend(p);
  }
  // the same physical position in panel q as slice i of panel p: with both voxel sizes known, the slice
  // holding the centre of slice i (i + 0.5)·s_p / s_q; else the centres at the same fraction of the extent
  function follow(p) {
    if (!link.checked) return;
    const a = +axisSel.value;
    for (const q of panels) {
      if (q === p || !is3d(q)) continue;
      const n = count(q);
      const sp_p = sp(p, a), sp_q = sp(q, a);
      const pos = sp_p && sp_q ? ((+p.slider.value + 0.5) * sp_p) / sp_q : ((+p.slider.value + 0.5) / count(p)) * n;
      q.slider.value = String(Math.min(n - 1, Math.max(0, Math.floor(pos))));
      draw(q);
    }
  }
  function setRange(p) {
    const n = count(p);
    p.slider.max = String(n - 1);
    p.slider.value = String(Math.floor(n / 2));
    p.slider.disabled = p.meta.shape.length !== 3;
  }
  function remove(p) {
    panels.splice(panels.indexOf(p), 1);
    p.box.remove();
  }
  function add(meta) {
    const p = { meta };
    p.slider = MS.el("input", { type: "range", min: "0", max: "0", value: "0", class: "slice" });
    p.idx = MS.el("span", { class: "index" });
    p.img = MS.el("img", { class: "slice-img hidden", alt: "slice of " + meta.path });
    p.bar = MS.scaleBarBox();
    const frame = MS.el("div", { class: "slice-frame" }, p.img, p.bar);
    p.legend = MS.el("div", { class: "legend hidden" });
    p.info = MS.el("div", { class: "info", text: `${meta.path}: ${meta.shape.join("×")} ${meta.dtype}${meta.labels ? " (labels)" : ""}` });
    const close = MS.el("button", { class: "small close", text: "×", title: "close this panel", onclick: () => remove(p) });
    p.box = MS.el("div", { class: "vpanel", "data-path": meta.path }, MS.el("div", { class: "row" }, p.info, close),
      MS.el("div", { class: "row" }, p.slider, p.idx), frame, p.legend);
    const rebar = () => MS.scaleBar(p.bar, p.img, across(p));
    p.img.addEventListener("load", () => { p.img.classList.remove("hidden"); rebar(); });
    if (window.ResizeObserver) new ResizeObserver(rebar).observe(p.img);
    p.img.addEventListener("error", () => MS.say(msg, `could not draw a slice of ${meta.path}`, "error"));
    p.slider.addEventListener("input", () => { draw(p); follow(p); });
    if (panels.length >= MAX) remove(panels[0]);
    panels.push(p);
    grid.append(p.box);
    setRange(p);
    return p;
  }
  async function open(path) {
    if (path) pathIn.value = path;
    MS.say(msg, "");
    let meta;
    try {
      meta = await MS.api("/api/volume/info?path=" + encodeURIComponent(pathIn.value));
    } catch (err) {
      MS.say(msg, err.message, "error");
      return;
    }
    let p = panels.find((q) => q.meta.path === meta.path);
    if (p) { p.meta = meta; setRange(p); } else p = add(meta);
    axisSel.disabled = !panels.some((q) => q.meta.shape.length === 3);
    draw(p);
    // a new panel joins the others' position
    const other = panels.find((q) => q !== p && q.meta.shape.length === 3);
    if (other && link.checked) follow(other);
  }
  openB.addEventListener("click", () => open());
  axisSel.addEventListener("change", () => { for (const p of panels) { setRange(p); draw(p); } });
  cmapSel.addEventListener("change", () => { for (const p of panels) draw(p); });
  link.addEventListener("change", () => { if (panels.length) follow(panels[0]); });
  return { open, get panels() { return panels.map((p) => p.meta.path); } };
};

// ------------------------------------------------------------------------------------------ jobs panel
MS.jobsPanel = function (container, onPick) {
  const ul = MS.el("ul", { class: "jobs" });
  container.append(MS.el("h3", { text: "Jobs (they keep running when you close the tab)" }), ul);
  async function refresh() {
    let data;
    try { data = await MS.api("/api/jobs"); } catch (err) { return; }
    ul.replaceChildren();
    if (!data.jobs.length) ul.append(MS.el("li", { class: "empty", text: "no jobs yet: what you start on these pages is listed here, with its progress" }));
    for (const j of data.jobs.slice(0, 12)) {
      const pct = j.progress === null || j.progress === undefined ? "" : ` ${Math.round(100 * j.progress)} %`;
      const li = MS.el("li", { class: "job " + j.state, "data-id": j.id },
        MS.el("span", { text: `#${j.id} ${j.title} — ${j.state}${pct}` }));
      if (j.error) li.append(MS.el("span", { class: "err", text: " " + j.error }));
      if (j.stoppable) li.append(MS.el("button", { class: "small", text: "stop", onclick: () => MS.post(`/api/jobs/${j.id}/stop`).then(refresh) }));
      if (onPick && j.kind.split(".")[0] === document.body.dataset.page) {
        li.append(MS.el("button", { class: "small", text: "show", onclick: () => onPick(j) }));
      }
      ul.append(li);
    }
  }
  refresh();
  setInterval(refresh, 2000);
  return { refresh };
};
