"use strict";
MS.api("/api/info").then((i) => { MS.q("#root").textContent = "data: " + i.root + " · matsight " + i.version; });
MS.jobsPanel(MS.q("#jobs"));
