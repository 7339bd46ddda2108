// matsight GUI · fuse page: train with a budget, live curves, stop/resume, generate, evaluate, view volumes.
"use strict";

(function () {
  const $ = MS.q;
  const viewer = MS.SliceViewer($("#viewer"));
  const curves = WF.curves([
    { svg: $("#plot-score"), keys: [["score", "score (lower is better)"], ["lr_agreement", "LR agreement"]], ylabel: "score / agreement" },
    { svg: $("#plot-vf"), pattern: /^vf\d+$/, label: (k) => "VF phase " + k.slice(2), phase: (k) => +k.slice(2), ylabel: "volume fraction (generated)" },
    { svg: $("#plot-gan"), keys: [["wass", "critic W-distance"], ["g_adv", "G adversarial"], ["vw", "voxel-wise"]], ylabel: "loss" },
  ]);
  const panel = WF.runPanel($("#run"), curves, viewer);
  WF.trainForm($("#train"), "/api/fuse/train", panel);
  $("#runopen").addEventListener("click", () => panel.load($("#runpick").value));

  $("#generate .start").addEventListener("click", async () => {
    const f = $("#generate");
    if (!MS.q("[name=run]", f).value && panel.run) MS.q("[name=run]", f).value = panel.run;
    const job = await WF.run(f, "/api/fuse/generate");
    if (job && job.state === "done") {
      panel.load(MS.q("[name=run]", f).value);
      if (job.result && job.result.out) {
        // LR, SR and (K > 1 samples) the entropy map side by side, their slices linked
        if (job.params.lr) await viewer.open(job.params.lr);
        await viewer.open(job.params.out);
        if (+job.params.samples > 1) await viewer.open(job.params.out.replace(/(\.[^./]+)$/, "_entropy$1"));
      }
    }
  });
  $("#evaluate .start").addEventListener("click", async () => {
    const f = $("#evaluate");
    const job = await WF.run(f, "/api/fuse/evaluate");
    if (job && job.state === "done") panel.load(job.run_dir);
  });

  MS.picker.init();
  MS.jobsPanel($("#jobs"), (j) => {
    if (j.run_dir) panel.load(j.run_dir);
  });
  MS.api("/api/info").then((i) => { $("#root").textContent = "data: " + i.root; });
})();
