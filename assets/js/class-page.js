// Browser side of a map or curve page in class mode (app/classpages.py). The page arrives built,
// its figures empty; each of its views (app.figures.<page>.VIEWS) is asked of api/view with the
// student's values: the server starts or joins the computation behind it (once for a whole
// class), answers its progress, and names the drawn view, fetched from api/view/data and set on
// the figures by name (AtlasClass.applyView). A change asks again for the views it affects. The
// values live in the URL.
(function () {
  "use strict";
  const A = window.AtlasClass, $ = A.$;
  const config = JSON.parse($("atlas-config").textContent);
  const link = new URLSearchParams(location.search);
  const client = "c" + Array.from({ length: 4 }, () => Math.random().toString(36).slice(2, 8)).join("");
  const ctls = A.controls();
  const state = { values: Object.assign({}, config.values), synced: false, notices: [], views: {} };
  for (const what of Object.keys(config.views)) {
    state.views[what] = { gen: 0, have: null, key: null, dirty: true };
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  // which views show (a tab) is known from the link before the server has validated it
  for (const [field] of Object.values(config.when)) if (link.has(field)) state.values[field] = link.get(field);

  // -- values, the URL, the tabs --------------------------------------------------------------
  function query(what) {
    const p = new URLSearchParams({ page: config.slug });
    if (link.get("preset")) p.set("preset", link.get("preset"));
    for (const f of config.fields) {  // before the first answer: the link's own values
      if (state.synced) p.set(f, state.values[f]);
      else if (link.has(f)) p.set(f, link.get(f));
    }
    if (!state.synced) for (const k of ["lock", "hide"]) if (link.get(k)) p.set(k, link.get(k));
    if (what) { p.set("what", what); p.set("client", client); }
    return p;
  }
  function writeURL() {
    const p = query(null);
    for (const f of config.fields) p.set(f, state.values[f]);
    for (const k of ["lock", "hide"]) if (link.get(k)) p.set(k, link.get(k));
    history.replaceState(null, "", "?" + p.toString());
    document.querySelectorAll("a.export-nc").forEach((a) => {
      const q = query(null);
      q.set("what", a.dataset.what);
      a.href = "api/compute/result.nc?" + q.toString();
    });
  }
  function visible(what) {
    const w = config.when[what];
    return !w || String(state.values[w[0]]) === w[1];
  }
  function showTabs() {
    document.querySelectorAll("[data-when]").forEach((el) => {
      el.hidden = String(state.values[el.dataset.when]) !== el.dataset.is;
    });
  }
  function alerts(extra, level) {
    A.alertBox([...state.notices, ...(extra || [])], level || (state.notices.length ? "warning" : "info"));
  }
  function sync(res, sent) {
    for (const n of res.notices || []) if (!state.notices.includes(n)) state.notices.push(n);
    if (!state.synced) {
      state.synced = true;
      A.teacher(ctls, res, config.labels);
    }
    // values validated by the server (clamped, a preset's): unless the student changed them since
    if (sent === JSON.stringify(state.values) || !res.values) {
      Object.assign(state.values, res.values || {});
    }
    A.show(ctls, state.values);
    showTabs();
    writeURL();
    alerts();
    refresh(null);  // a view the validated values show (another tab) and not yet asked for
  }

  // -- progress of each computation -----------------------------------------------------------
  function progress(what, res) {
    const box = document.querySelector(`[data-progress="${what}"]`);
    if (!box) return;
    const label = (box.querySelector(".bar").getAttribute("aria-label")) || what;
    const bar = box.querySelector(".bar span"), status = box.querySelector(".status");
    const cancel = box.querySelector(".cancel"), resume = box.querySelector(".resume");
    const total = res.total || 1, frac = res.state === "done" ? 1 : Math.min((res.done || 0) / total, 1);
    bar.style.width = (100 * frac).toFixed(1) + "%";
    box.querySelector(".bar").setAttribute("aria-valuenow", (100 * frac).toFixed(0));
    box.dataset.state = res.state;
    cancel.hidden = res.state !== "running";
    resume.hidden = res.state !== "cancelled";
    let text;
    if (res.state === "running") {
      const left = res.left != null && isFinite(res.left) ? ` · about ${Math.max(1, Math.round(res.left))} s left` : "";
      text = `${label}: computing, ${Math.floor(res.done || 0)} of ${total} done${left}`;
    } else if (res.state === "done") text = `${label}: done`;
    else if (res.state === "cancelled") text = `${label}: cancelled — the plot shows what was done.`;
    else text = `${label}: ${res.error || "failed"}`;
    status.textContent = text;
    box.classList.toggle("failed", res.state === "failed");
  }

  // -- views ------------------------------------------------------------------------------------
  const camel = (s) => s.replace(/[-_](\w)/g, (_, c) => c.toUpperCase());
  async function loadView(key) {
    try {
      const r = await fetch("api/view/data?key=" + encodeURIComponent(key));
      if (!r.ok) return false;
      const view = await r.json();
      return view;
    } catch (e) { return false; }
  }
  async function follow(what) {
    const v = state.views[what], gen = ++v.gen;
    v.dirty = false;
    document.body.dataset[camel(what) + "Drawn"] = "pending";  // (tests wait for "done")
    let wait = 0;
    for (let round = 0; ; round++) {
      const p = query(what);
      p.set("wait", String(wait));
      if (v.have) p.set("have", v.have);
      const sent = JSON.stringify(state.values);
      let r, res;
      try {
        [r, res] = await A.get("api/view?" + p.toString());
      } catch (e) {
        if (gen !== v.gen) return;
        progress(what, { state: "failed", error: "the server did not answer; change a value to try again." });
        return;
      }
      if (gen !== v.gen) return;  // a newer request for this view is out
      if (!r.ok) {
        progress(what, { state: "failed", error: res.error });
        alerts([res.error], "danger");
        return;
      }
      sync(res, sent);
      v.key = res.key;
      if (res.view && res.view !== v.have) {
        const view = await loadView(res.view);
        if (gen !== v.gen) return;
        if (view) { A.applyView(view); v.have = res.view; }
        else if (round < 3) { v.have = null; continue; }  // dropped by the server: draw it again
      }
      progress(what, res);
      document.body.dataset[camel(what) + "Drawn"] = res.state;
      if (res.state !== "running") return;
      wait = 2;
      await sleep(50);
    }
  }
  function refresh(changed) {
    for (const [what, fields] of Object.entries(config.views)) {
      const v = state.views[what];
      if (changed && fields.includes(changed)) v.dirty = true;
      if (v.dirty && visible(what)) follow(what);  // (follow clears dirty)
    }
  }
  async function cancel(what) {
    const v = state.views[what];
    v.gen++;  // the loop stops; the others following it keep it running
    if (v.key) await A.get("api/compute/cancel?" + new URLSearchParams({ key: v.key, client }).toString());
    progress(what, { state: "cancelled", done: 0, total: 1 });
  }
  document.querySelectorAll("[data-progress]").forEach((box) => {
    const what = box.dataset.progress;
    box.querySelector(".cancel").addEventListener("click", () => cancel(what));
    box.querySelector(".resume").addEventListener("click", () => { state.views[what].have = null; follow(what); });
  });

  // -- the student's changes: controls, clicks on a map, a box zoom -----------------------------
  function commit(name, value) {
    state.values[name] = String(value);
    writeURL();
    showTabs();
    refresh(name);
  }
  A.bind(ctls, commit);
  const round4 = (x) => Number(x.toPrecision(4));  // 4 significant digits, as the pages keep
  function transform(kind, x) {
    return kind === "pow10" ? Math.pow(10, x) : kind === "log10" ? Math.log10(x) : x;
  }
  window.AtlasClassTap = (name, x, y) => {
    const fields = config.taps[name];
    if (!fields) return;
    const tr = config.tap_transforms[name] || {};
    [[fields[0], transform(tr.x, x)], [fields[1], transform(tr.y, y)]].forEach(([f, val]) => {
      if (!f || !ctls[f] || ctls[f].box.disabled) return;  // a teacher's lock holds
      const b = config.tap_bounds[f];
      const clipped = b ? Math.min(Math.max(val, b[0]), b[1]) : val;
      state.values[f] = String(round4(clipped));
    });
    A.show(ctls, state.values);
    writeURL();
    for (const f of fields) refresh(f);
  };
  window.AtlasClassZoom = (name, x0, x1, y0, y1) => {
    const fields = config.zooms[name];
    if (!fields) return;
    const tr = config.zoom_transforms[name] || {};
    const clip = (f, z) => { const b = config.zoom_bounds[f]; return b ? Math.min(Math.max(z, b[0]), b[1]) : z; };
    const range = (f, a, b, t) => [clip(f, transform(t, a)), clip(f, transform(t, b))].map(round4);
    let moved = false;
    [[fields[0], x0, x1, tr.x], [fields[1], y0, y1, tr.y]].forEach(([f, a, b, t]) => {
      if (!f || (ctls[f] && ctls[f].box.disabled)) return;  // a teacher's lock holds
      const [lo, hi] = range(f, a, b, t);
      const [clo, chi] = String(state.values[f]).split(",").map(Number);
      // a redraw of the same region (or a box too thin to mean anything) asks nothing
      if (!(hi > lo) || Math.abs(lo - clo) + Math.abs(hi - chi) <= 0.01 * Math.abs(chi - clo)) return;
      state.values[f] = `${lo},${hi}`;
      moved = true;
    });
    if (!moved) return;
    writeURL();
    for (const f of fields) refresh(f);
  };

  A.share(config, link);
  showTabs();
  writeURL();
  refresh(null);  // every view of the page, with the link's values (validated by the server)
})();
