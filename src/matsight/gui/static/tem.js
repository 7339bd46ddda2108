// matsight GUI · tem page: open an HRTEM file, analyse a frame, show image/FFT/spots/maps, movies over time.
"use strict";

(function () {
  const $ = MS.q;
  let current = null; // {path, info}
  let lastJob = null;
  let seriesJob = null;
  let analyseToken = 0;

  function phaseFiles() {
    return $("#phase_file").value ? $("#phase_file").value.split(",").map((s) => s.trim()).filter((s) => s) : [];
  }

  function settings() {
    return {
      path: current ? current.path : $("#file").value,
      pixel_size: $("#pixel_size").value,
      calibration: $("#calibration").value,
      phases: MS.qa("#phases input.builtin:checked").map((c) => c.value),
      phases_off: MS.qa("#phases input.added:not(:checked)").map((c) => c.value),
      phase_files: phaseFiles(),
      phase_yaml: $("#phase_yaml").value,
      tolerance: $("#tolerance").value,
      angle_tolerance: $("#angle_tolerance").value,
      min_intensity: $("#min_intensity").value,
      d_min: $("#d_min").value,
      d_max: $("#d_max").value,
      detector: $("#detector").value,
    };
  }

  function phaseBox(p, cls, checked) {
    const box = MS.el("input", { type: "checkbox", value: p.name, class: cls, checked });
    const title = [p.name, p.space_group, p.file || "shipped"].filter((t) => t).join(" · ");
    return MS.el("label", { class: cls, title, style: "display:inline-block;margin-right:10px;color:#222" }, box, " " + p.name);
  }

  // the phases the files and the YAML box add, shown (ticked) after the shipped ones; a box the user unticked
  // stays unticked while its phase stays added. Throws the server's one-line message.
  let addedKey = null;
  async function refreshPhases() {
    const body = { phase_files: phaseFiles(), phase_yaml: $("#phase_yaml").value };
    const key = JSON.stringify(body);
    if (key === addedKey) return;
    const off = new Set(MS.qa("#phases input.added:not(:checked)").map((c) => c.value));
    const r = await MS.post("/api/tem/phases", body);
    MS.qa("#phases label.added").forEach((e) => e.remove());
    for (const p of r.added) $("#phases").append(phaseBox(p, "added", !off.has(p.name)));
    addedKey = key;
    MS.say("#phasemsg", r.added.length ? `added: ${r.added.map((p) => `${p.name} (${p.file})`).join(", ")}` : "", "info");
  }

  async function addPhases() {
    try {
      await refreshPhases();
    } catch (err) {
      MS.say("#phasemsg", err.message, "error");
    }
  }

  let ready = null; // the shipped phase list, from /api/info: an analysis waits for it
  async function openFile() {
    MS.say("#msg", "");
    $("#results").classList.add("hidden");
    $("#seriesbox").classList.add("hidden");
    $("#framebox").classList.add("hidden");
    current = null;
    let info;
    try {
      const q = new URLSearchParams({ path: $("#file").value, pixel_size: $("#pixel_size").value, calibration: $("#calibration").value });
      info = await MS.api("/api/tem/open?" + q.toString());
    } catch (err) {
      MS.say("#msg", err.message, "error");
      MS.say("#fileinfo", "");
      return;
    }
    current = { path: info.path, info };
    const ps = info.pixel_size_nm.map((p) => p.toPrecision(4)).join(" × ");
    MS.say("#fileinfo", `${info.path}: ${info.shape.join("×")} · ${info.n_frames} frame(s) · pixel ${ps} nm (${info.calibration_source || info.pixel_size_source})`, "info");
    if (info.n_frames > 1) {
      $("#frame").max = String(info.n_frames - 1);
      $("#frame").value = "0";
      $("#frameval").textContent = "0";
      $("#framebox").classList.remove("hidden");
      $("#seriesbox").classList.remove("hidden");
    }
    analyse();
  }

  async function analyse() {
    if (!current) { MS.say("#msg", "open a file first", "error"); return; }
    const token = ++analyseToken;
    try {
      await ready;
      await refreshPhases(); // an added phase is in the list before its analysis
    } catch (err) {
      MS.say("#msg", err.message, "error");
      return;
    }
    const body = settings();
    if (current.info.n_frames > 1) body.frame = +$("#frame").value;
    MS.say("#msg", "");
    let job;
    try {
      job = await MS.post("/api/tem/analyze", body);
    } catch (err) {
      MS.say("#msg", err.message, "error");
      return;
    }
    const update = MS.progress($("#progress"));
    job = await MS.pollJob(job.id, update, 300);
    if (token !== analyseToken) return; // a newer analysis (e.g. slider moved) replaced this one
    if (job.state !== "done") {
      MS.say("#msg", job.error || "analysis " + job.state, "error");
      return;
    }
    lastJob = job;
    show(job);
  }

  // Labels of the FFT's spots (named phases first, then the stronger spots) placed away from the centre where
  // they overlap no other label nor the scale bar and stay inside the FFT, as the report's figure does; a label
  // with no such place is hidden. Returns how many were hidden.
  function placeLabels(items, W, H, scale) {
    const taken = [{ x: W - 110 * scale, y: H - 40 * scale, width: 110 * scale, height: 40 * scale }]; // scale bar
    const overlaps = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
    let left = 0;
    for (const it of items) {
      const a0 = it.x === W / 2 && it.y === H / 2 ? Math.PI / 4 : Math.atan2(it.y - H / 2, it.x - W / 2);
      let placed = false;
      for (const dist of [it.rad + 2 * scale, it.rad + 9 * scale]) {
        for (const turn of [0, 35, -35, 70, -70, 110, -110]) {
          const a = a0 + (turn * Math.PI) / 180, ux = Math.cos(a), uy = Math.sin(a);
          it.t.setAttribute("text-anchor", ux > 0.3 ? "start" : ux < -0.3 ? "end" : "middle");
          it.t.setAttribute("x", it.x + ux * dist);
          it.t.setAttribute("y", it.y + uy * dist + (uy > 0.3 ? 9 : uy < -0.3 ? 0 : 4) * scale);
          // a margin of 2 screen px: text metrics shift a little when the page's fonts settle
          const m = 2 * scale, b = it.t.getBBox();
          const bb = { x: b.x - m, y: b.y - m, width: b.width + 2 * m, height: b.height + 2 * m };
          if (bb.x >= 0 && bb.y >= 0 && bb.x + bb.width <= W && bb.y + bb.height <= H && !taken.some((o) => overlaps(o, bb))) {
            taken.push(bb);
            placed = true;
            break;
          }
        }
        if (placed) break;
      }
      it.t.classList.toggle("left-out", !placed);
      if (!placed) left += 1;
    }
    return left;
  }

  // one scale bar per stack, kept right when the panel is resized
  function bars(nm, perNm) {
    for (const [stack, img, size, unit] of [["#imgstack", "#image", nm, "nm"], ["#fftstack", "#fft", perNm, "nm⁻¹"]]) {
      let bar = MS.q(stack + " .scalebar");
      if (!bar) {
        bar = MS.scaleBarBox();
        $(stack).append(bar);
        const redo = () => MS.scaleBar(bar, $(img), bar.size, bar.unit);
        $(img).addEventListener("load", redo);
        if (window.ResizeObserver) new ResizeObserver(redo).observe($(img));
      }
      bar.size = size;
      bar.unit = unit;
      MS.scaleBar(bar, $(img), size, unit);
    }
  }

  function show(job) {
    const r = job.result;
    const base = `/api/tem/${job.id}/`;
    $("#results").classList.remove("hidden");
    $("#results").dataset.job = job.id;
    $("#image").src = base + "image.png";
    // phase map overlays: one image per phase, opacity per slider (drawn by the browser, no re-render)
    MS.qa("#imgstack img.overlay").forEach((e) => e.remove());
    const ctl = $("#overlays");
    ctl.replaceChildren();
    for (const p of r.phases.filter((q) => q.has_map)) {
      const ov = MS.el("img", { class: "overlay", src: base + "map/" + encodeURIComponent(p.name), alt: p.name, "data-phase": p.name });
      ov.style.opacity = "0.45";
      $("#imgstack").append(ov);
      const show = MS.el("input", { type: "checkbox", checked: true });
      const op = MS.el("input", { type: "range", min: "0", max: "1", step: "0.05", value: "0.45", class: "opacity", "data-phase": p.name });
      show.addEventListener("change", () => { ov.style.display = show.checked ? "" : "none"; });
      for (const ev of ["input", "change"]) op.addEventListener(ev, () => { ov.style.opacity = op.value; });
      const frac = p.area_fraction === null ? "" : ` ${(100 * p.area_fraction).toFixed(1)} %`;
      ctl.append(MS.el("div", { class: "row" }, show, MS.el("span", { class: "swatch", style: `background:${p.color}` }),
        MS.el("span", { text: p.name + frac }), MS.el("span", { text: "opacity" }), op));
    }
    if (!r.phases.some((q) => q.has_map)) ctl.append(MS.el("div", { text: "no phase identified: no map" }));
    // FFT with spots and their Friedel mates
    $("#fft").src = base + "fft.png";
    const svg = $("#fftsvg");
    const NS = "http://www.w3.org/2000/svg";
    svg.setAttribute("viewBox", `0 0 ${r.fft_box.width} ${r.fft_box.height}`);
    svg.replaceChildren();
    const shownW = svg.getBoundingClientRect().width || 420;
    const scale = r.fft_box.width / shownW; // viewBox units per displayed pixel
    const items = [];
    r.spots.forEach((s, k) => {
      for (const [y, x] of [[s.row, s.col], [s.mate_row, s.mate_col]]) {
        const c = document.createElementNS(NS, "circle");
        c.setAttribute("cx", x); c.setAttribute("cy", y); c.setAttribute("r", s.radius);
        c.setAttribute("stroke", s.color); c.setAttribute("class", "spot"); c.dataset.k = k;
        c.style.strokeWidth = 1.5 * scale;
        svg.append(c);
      }
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", s.col + s.radius + 1); t.setAttribute("y", s.row - s.radius - 1);
      t.setAttribute("fill", s.color); t.setAttribute("class", "spot-label");
      t.style.fontSize = 11 * scale + "px"; // inline: CSS would otherwise fix it in viewBox units
      t.style.strokeWidth = 2 * scale;
      t.textContent = s.label;
      svg.append(t);
      items.push({ t, x: s.col, y: s.row, rad: s.radius, rank: [s.phase === "unknown" ? 1 : 0, -(s.intensity || 0)] });
    });
    items.sort((a, b) => a.rank[0] - b.rank[0] || a.rank[1] - b.rank[1]);
    const left = placeLabels(items, r.fft_box.width, r.fft_box.height, scale);
    $("#fftnote").textContent = left ? `${left} label${left > 1 ? "s" : ""} left out (no free place; every spot is in the table)` : "";
    // scale bars: nm on the frame, 1/nm on the FFT (its pixel is 1 / (n_x · pixel size))
    const px = r.calibration && r.calibration.pixel_size_nm ? r.calibration.pixel_size_nm.x : null;
    bars(px, px ? 1 / (r.shape[1] * px) : null);
    // calibration, verdict, figure of merit per phase
    $("#calline").textContent = r.calibration_line;
    MS.say("#verdict", r.verdict, r.found_any ? "ok" : "warn");
    const merit = $("#merit");
    merit.replaceChildren();
    if (r.merit && r.merit.length) {
      merit.append(MS.el("tr", {}, ...["phase", "figure of merit", "zone", "spots", "share", "named"].map((h) => MS.el("th", { text: h, class: h === "phase" || h === "zone" ? "l" : "" }))));
      for (const m of r.merit) {
        merit.append(MS.el("tr", { class: "merit-row" }, MS.el("td", { class: "l", text: m.phase }), MS.el("td", { text: (+m.merit).toFixed(2) }),
          MS.el("td", { class: "l", text: m.zone }), MS.el("td", { text: String(m.spots) }), MS.el("td", { text: (+m.share).toFixed(2) }),
          MS.el("td", { text: m.named ? "yes" : "no" })));
      }
    }
    // summary, table, exports
    const dl = $("#summary");
    dl.replaceChildren();
    for (const [k, v] of Object.entries(r.summary)) dl.append(MS.el("dt", { text: k }), MS.el("dd", { text: v }));
    const cols = [["#", null], ["phase", "phase"], ["(hkl)", "hkl"], ["d (Å)", "d_angstrom"], ["d ref (Å)", "d_ref_angstrom"],
      ["error %", "d_error_percent"], ["zone", "zone"], ["intensity", "intensity"], ["SNR", "snr"], ["angle°", "angle_deg"]];
    const table = $("#table");
    table.replaceChildren();
    table.append(MS.el("tr", {}, ...cols.map(([h]) => MS.el("th", { text: h, class: ["phase", "(hkl)", "zone"].includes(h) ? "l" : "" }))));
    const colorOf = Object.fromEntries(r.phases.map((p) => [p.name, p.color]));
    r.table.forEach((row, k) => {
      const tr = MS.el("tr", { class: "spot-row" });
      for (const [h, key] of cols) {
        let v = key === null ? k + 1 : row[key];
        if (typeof v === "number") v = Math.abs(v) >= 1e5 ? v.toExponential(3) : +v.toPrecision(4);
        if (v === null || v === undefined) v = "";
        const td = MS.el("td", { class: ["phase", "(hkl)", "zone"].includes(h) ? "l" : "" });
        if (key === "phase") td.append(MS.el("span", { class: "swatch", style: `background:${colorOf[v] || "#999"}` }));
        td.append(String(v));
        tr.append(td);
      }
      table.append(tr);
    });
    const ex = $("#exports");
    ex.replaceChildren(
      MS.el("a", { href: base + "csv", download: "spots.csv", text: "spots CSV" }),
      MS.el("a", { href: base + "fft_figure.png", download: "fft.png", text: "FFT figure PNG" }),
      MS.el("a", { href: base + "map_figure.png", download: "phase_map.png", text: "phase map PNG" }),
      MS.el("button", { class: "small", text: "save report to run folder", onclick: () => save(job) }));
  }

  async function save(job) {
    try {
      let s = await MS.post(`/api/tem/${job.id}/save`, {});
      s = await MS.pollJob(s.id);
      if (s.state !== "done") throw new Error(s.error || s.state);
      const rel = s.run_dir + "/index.html";
      MS.say("#msg", "", "");
      const box = $("#msg");
      box.className = "msg info";
      box.replaceChildren("report saved: ", MS.el("a", { href: "/files/" + rel, target: "_blank", text: rel }));
    } catch (err) {
      MS.say("#msg", err.message, "error");
    }
  }

  async function series() {
    if (!current) return;
    const body = settings();
    body.frame_time = $("#frame_time").value;
    MS.say("#seriesmsg", "");
    let job;
    try {
      job = await MS.post("/api/tem/series", body);
    } catch (err) {
      MS.say("#seriesmsg", err.message, "error");
      return;
    }
    seriesJob = job;
    $("#seriesstop").classList.remove("hidden");
    job = await MS.pollJob(job.id, MS.progress($("#seriesprogress")), 500);
    $("#seriesstop").classList.add("hidden");
    if (job.state !== "done") {
      MS.say("#seriesmsg", job.error || "series " + job.state, job.state === "stopped" ? "info" : "error");
      return;
    }
    seriesJob = job;
    $("#seriescal").textContent = job.result.calibration_line || "";
    drawSeries();
    $("#seriesexports").replaceChildren(
      MS.el("a", { href: `/api/tem/${job.id}/csv`, download: "series.csv", text: "series CSV" }),
      MS.el("button", { class: "small", text: "save report to run folder", onclick: () => save(job) }));
  }

  function drawSeries() {
    if (!seriesJob || !seriesJob.result || !seriesJob.result.intensity) return;
    const r = seriesJob.result;
    const useTime = $("#frame_time").value !== "";
    const x = useTime ? r.time_s : r.frames.map((_, i) => i);
    const lines = r.phases.filter((p) => r.intensity[p].some((v) => v > 0))
      .map((p) => ({ name: p, color: r.colors[p], x, y: r.intensity[p] }));
    MS.plot($("#seriesplot"), lines, { xlabel: useTime ? "time (s)" : "frame", ylabel: "intensity", log: $("#serieslog").checked });
  }

  let frameTimer = null;
  function onFrame() {
    $("#frameval").textContent = $("#frame").value;
    clearTimeout(frameTimer);
    frameTimer = setTimeout(analyse, 350);
  }

  async function init() {
    // the buttons answer at once, before the server's info arrives (a slow first answer lost early clicks)
    MS.picker.init();
    MS.jobsPanel($("#jobs"));
    $("#open").addEventListener("click", openFile);
    $("#file").addEventListener("keydown", (e) => { if (e.key === "Enter") openFile(); });
    $("#rerun").addEventListener("click", analyse);
    $("#addphases").addEventListener("click", addPhases);
    $("#phase_file").addEventListener("change", addPhases);
    $("#frame").addEventListener("input", onFrame);
    $("#series").addEventListener("click", series);
    $("#seriesstop").addEventListener("click", () => seriesJob && MS.post(`/api/jobs/${seriesJob.id}/stop`));
    $("#serieslog").addEventListener("change", drawSeries);
    ready = MS.api("/api/info").then((info) => {
      $("#root").textContent = "data: " + info.root;
      // shipped phases first, then any the user added before this answer came
      $("#phases").prepend(...info.phases.map((p) => phaseBox({ name: p, space_group: "", source: "shipped" }, "builtin", true)));
    });
    await ready;
  }
  init();
})();
