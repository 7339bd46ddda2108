"use strict";
(function () {
  const $ = MS.q;
  const viewer = MS.SliceViewer($("#viewer"));
  const curves = WF.curves([
    { svg: $("#plot-loss"), pattern: /^loss$/, ylabel: "training loss", log: true },
    { svg: $("#plot-val"), pattern: /^(psnr|val)/, ylabel: "validation PSNR (dB)" },
  ]);
  const panel = WF.runPanel($("#run"), curves, viewer);
  WF.trainForm($("#train"), "/api/restore/train", panel);
  $("#runopen").addEventListener("click", () => panel.load($("#runpick").value));
  $("#register .start").addEventListener("click", async () => {
    const f = $("#register");
    const job = await WF.run(f, "/api/restore/register");
    if (job && job.state === "done") {
      const r = job.result, pair = job.params.run;
      MS.q("[name=run]", f).value = pair;
      MS.q("[name=pair]", $("#train")).value = pair;
      MS.q(".result", f).replaceChildren(
        MS.el("div", { class: "msg info", text: `pair ${r.shape.join("×")}: rotation ${r.rotation_deg.toFixed(3)}°, ` +
          `shift ${r.shift.map((v) => v.toFixed(2)).join(", ")} px, NCC ${r.ncc_before.toFixed(3)} → ${r.ncc_after.toFixed(3)}` }),
        MS.el("img", { class: "overlay", alt: "before/after registration", src: "/files/" + pair + "/overlay.png?t=" + Date.now() }));
    }
  });
  $("#evaluate .start").addEventListener("click", async () => {
    const f = $("#evaluate");
    const job = await WF.run(f, "/api/restore/evaluate");
    if (job && job.state === "done") {
      const rows = Object.entries(job.result.metrics).map(([name, m]) => MS.el("tr", {},
        MS.el("td", { class: "l", text: name }),
        ...["psnr", "ssim", "cnr", "fwhm_median", "sift_congruent"].map((k) =>
          MS.el("td", { text: m[k] === null || m[k] === undefined ? "–" : (+m[k]).toPrecision(4) }))));
      MS.q(".result", f).replaceChildren(
        MS.el("table", { class: "metrics" },
          MS.el("tr", {}, ...["", "PSNR", "SSIM", "CNR", "FWHM", "SIFT"].map((h) => MS.el("th", { text: h }))), ...rows),
        MS.el("a", { href: "/files/" + job.params.report + "/index.html", target: "_blank", class: "report", text: "open the HTML report" }));
    }
  });
  $("#apply .start").addEventListener("click", async () => {
    const f = $("#apply");
    if (!MS.q("[name=model]", f).value && panel.run) MS.q("[name=model]", f).value = panel.run;
    const job = await WF.run(f, "/api/restore/apply");
    if (job && job.state === "done") {
      panel.load(MS.q("[name=model]", f).value);
      const enhanced = job.params.out + (job.result.time_steps.length ? "/" + job.result.time_steps[0] : "") + "/enhanced.tif";
      viewer.open(enhanced);
      if (!MS.q("[name=out]", $("#evaluate")).value) MS.q("[name=out]", $("#evaluate")).value = job.params.out;
    }
  });
  MS.picker.init();
  MS.jobsPanel($("#jobs"), (j) => { if (j.run_dir) panel.load(j.run_dir); });
  MS.api("/api/info").then((i) => { $("#root").textContent = "data: " + i.root; });
})();
