// Browser side of the live page's class mode (app/classmode.py). The page arrives built; this
// keeps the student's values and run: every change and every frame is one GET of
// api/live/frame, whose columns are set on the figures' sources found by name (the columns of
// app/figures/live.py, the same as the Panel page's). The values live in the URL.
(function () {
  "use strict";
  const A = window.AtlasClass, $ = A.$;  // class-common.js
  const config = JSON.parse(document.getElementById("atlas-config").textContent);
  const link = new URLSearchParams(location.search);
  const state = { values: Object.assign({}, config.values), run: null, playing: false,
                  busy: false, dirty: false, notices: [], pi: config.pi, first: true };
  const controls = A.controls();

  // -- figures ------------------------------------------------------------------------------
  function setColumns(columns, titles) {
    A.setColumns(columns);
    const d = A.doc();
    for (const [key, text] of Object.entries(titles || {})) {
      const fig = d && d.get_model_by_name("live-fig-" + key);
      if (fig && fig.title) fig.title.text = text;
    }
  }

  // -- controls and the URL -------------------------------------------------------------------
  const show = (values) => A.show(controls, values);
  function writeURL() {
    const p = new URLSearchParams();
    p.set("page", config.slug);
    if (link.get("preset")) p.set("preset", link.get("preset"));
    for (const f of config.fields) p.set(f, state.values[f]);
    for (const k of ["lock", "hide"]) if (link.get(k)) p.set(k, link.get(k));
    history.replaceState(null, "", "?" + p.toString());
    $("export-nc").href = "api/live/export.nc?" + new URLSearchParams(
      { run: state.run || "", link: location.href.slice(0, 900) }).toString();
  }
  function alertBox(extra, level) {
    A.alertBox([...state.notices, ...extra], level || (state.notices.length ? "warning" : "info"));
  }
  const teacher = (res) => A.teacher(controls, res, config.labels);

  // -- requests -----------------------------------------------------------------------------
  function query(action) {
    const p = state.first ? new URLSearchParams(link) : new URLSearchParams();
    if (!state.first) for (const f of config.fields) p.set(f, state.values[f]);
    if (state.run) p.set("run", state.run);
    p.set("action", action);
    p.delete("page");
    return p;
  }
  function render(res) {
    state.values = res.values;
    show(res.values);
    if (res.notices && res.notices.length) state.notices = [...state.notices, ...res.notices];
    setColumns(res.columns, res.titles);
    $("step-count").textContent = res.step.toLocaleString("en-US");
    const stopped = res.n - res.running;
    let extra = stopped ? ` · ${stopped} stopped` : "";
    if (res.capped) extra += ` · capped at ${res.capped.toLocaleString("en-US")} steps/frame (work limit)`;
    $("running").textContent = `${res.running} running${extra}`;
    alertBox([res.message], res.diverged ? "danger" : null);
    const ev = $("events");
    ev.replaceChildren();
    if (res.events.length) {
      const h = document.createElement("b");
      h.textContent = "Changes during the run (dotted lines)";
      const ul = document.createElement("ul");
      res.events.slice(-8).forEach(([s, t]) => {
        const li = document.createElement("li");
        li.textContent = `step ${s.toLocaleString("en-US")}: ${t}`;
        ul.appendChild(li);
      });
      ev.append(h, ul);
    }
    if (res.pi.sigma2 !== state.pi.sigma2 || res.pi.teacher !== state.pi.teacher) loadPi(res.pi);
    writeURL();
  }
  const get = A.get;
  async function request(action) {
    state.busy = true;
    $("busy").hidden = false;
    try {
      const [r, res] = await get("api/live/frame?" + query(action).toString());
      if (!r.ok) {
        if (r.status === 404) state.run = null;  // the server no longer has it: start afresh
        alertBox([res.error || "The request failed."], "danger");
        return null;
      }
      if (state.first) teacher(res);
      state.first = false;
      state.run = res.run;
      render(res);
      return res;
    } catch (e) {
      alertBox(["The server did not answer; check the connection and press Play again."], "danger");
      return null;
    } finally {
      state.busy = false;
      $("busy").hidden = true;
      if (state.dirty && !state.playing) setTimeout(settle, 0);  // changed while it was out
    }
  }
  async function loadPi(pi) {
    state.pi = pi;
    const [r, res] = await get("api/live/pi?" + new URLSearchParams(pi).toString());
    if (r.ok && res.sigma2 === state.pi.sigma2 && res.teacher === state.pi.teacher) {
      setColumns(res.columns, { where: res.title });
    }
  }
  async function settle() {  // values changed while a request was out: send them now
    while (state.dirty && !state.playing && !state.busy) {
      state.dirty = false;
      await request("none");
    }
  }

  // -- play, step, reset ----------------------------------------------------------------------
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  function setPlaying(on) {
    state.playing = on;
    $("play").textContent = on ? "❚❚ Pause" : "▶ Play";
    $("play").setAttribute("aria-pressed", on ? "true" : "false");
  }
  async function loop() {
    while (state.playing) {
      const t0 = performance.now();
      while (state.busy) await sleep(10);
      state.dirty = false;
      const res = await request("step");
      if (!res || !state.playing) break;
      if (res.diverged || res.running === 0) break;
      const wait = state.values.frame_ms - (performance.now() - t0);
      if (wait > 0) await sleep(wait);
    }
    setPlaying(false);
    settle();
  }
  $("play").addEventListener("click", () => {
    if (state.playing) { setPlaying(false); return; }
    setPlaying(true);
    loop();
  });
  $("step").addEventListener("click", async () => {
    setPlaying(false);
    while (state.busy) await sleep(10);
    state.dirty = false;
    await request("step");
  });
  $("reset").addEventListener("click", async () => {
    setPlaying(false);
    while (state.busy) await sleep(10);
    state.notices = [];
    await request("reset");
  });
  function commit(name, value) {
    state.values[name] = value;
    state.dirty = true;
    writeURL();
    if (!state.playing) settle();  // while playing, the next frame carries the change
  }
  A.bind(controls, commit);
  // (the menu button and the phone's folded sidebar: class-menu.js)

  // -- share ----------------------------------------------------------------------------------
  A.share(config, link);
  $("export-nc").addEventListener("click", (e) => {
    if (!state.run) { e.preventDefault(); alertBox(["Nothing to export yet."], "warning"); }
  });

  request("none");  // the link's values, validated by the server (notices, locks, the run's name)
})();
