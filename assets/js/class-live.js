// Browser side of the live page's class mode (app/classmode.py). The page arrives built; this
// keeps the student's values and run: every change and every frame is one GET of
// api/live/frame, whose columns are set on the figures' sources found by name (the columns of
// app/figures/live.py, the same as the Panel page's). The values live in the URL.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("atlas-config").textContent);
  const $ = (id) => document.getElementById(id);
  const link = new URLSearchParams(location.search);
  const state = { values: Object.assign({}, config.values), run: null, playing: false,
                  busy: false, dirty: false, notices: [], pi: config.pi, first: true };
  const controls = {};
  document.querySelectorAll("[data-param]").forEach((el) => { controls[el.dataset.param] = { box: el }; });
  document.querySelectorAll("[data-slider]").forEach((el) => { controls[el.dataset.slider].slider = el; });

  // -- figures ------------------------------------------------------------------------------
  const { ndarray } = Bokeh.require("core/util/ndarray");
  const doc = () => (window.Bokeh && Bokeh.documents.length ? Bokeh.documents[0] : null);
  function decode(cols) {
    const out = {};
    for (const [name, v] of Object.entries(cols)) {
      if (Array.isArray(v)) { out[name] = v; continue; }
      const bin = atob(v.f4), bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const arr = new Float32Array(bytes.buffer);
      // an image is a 2-D array: Bokeh's own ndarray (BokehJS 3.9 refuses an array of rows)
      out[name] = v.shape ? [ndarray(arr.buffer, { dtype: "float32", shape: v.shape })] : arr;
    }
    return out;
  }
  function setColumns(columns, titles) {
    const d = doc();
    if (!d) return;
    for (const [name, cols] of Object.entries(columns)) {
      const source = d.get_model_by_name(name);
      if (source) source.data = decode(cols);
    }
    for (const [key, text] of Object.entries(titles || {})) {
      const fig = d.get_model_by_name("live-fig-" + key);
      if (fig && fig.title) fig.title.text = text;
    }
  }

  // -- controls and the URL -------------------------------------------------------------------
  function show(values) {
    for (const [name, c] of Object.entries(controls)) {
      if (!(name in values)) continue;
      c.box.value = String(values[name]);
      if (c.slider) c.slider.value = String(values[name]);
    }
  }
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
  function text(el, s) { const p = document.createElement("p"); p.textContent = s; el.appendChild(p); }
  function alertBox(extra, level) {
    const box = $("alert");
    box.replaceChildren();
    const all = [...state.notices, ...extra].filter(Boolean);
    all.forEach((s) => text(box, s));
    box.className = "alert " + (level || (state.notices.length ? "warning" : "info"));
    box.hidden = all.length === 0;
  }
  function teacher(res) {
    const labels = [];
    for (const name of res.lock || []) {
      const c = controls[name];
      if (!c) continue;
      c.box.disabled = true;
      if (c.slider) c.slider.disabled = true;
      const label = document.querySelector(`label[for="ctl-${name}"]`);
      if (label && !label.textContent.endsWith("🔒")) label.textContent += " 🔒";
      labels.push(config.labels[name] || name);
    }
    if (labels.length) {
      const note = $("lock-note");
      note.textContent = "🔒 Fixed by your teacher's link: " + labels.join(", ") + ".";
      note.hidden = false;
    }
    for (const name of res.hide || []) {
      document.querySelectorAll(`.atlas-${name}, [data-hide="${name}"]`).forEach((el) => { el.hidden = true; });
    }
    document.querySelectorAll("section.group").forEach((sec) => {  // a heading over nothing goes too
      const items = sec.querySelectorAll(".ctl");
      if (items.length && [...items].every((el) => el.hidden)) sec.hidden = true;
    });
  }

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
  async function get(url) {
    const r = await fetch(url, { cache: "no-store" });
    let body = null;
    try { body = await r.json(); } catch (e) { body = { error: "The server's answer was not readable." }; }
    return [r, body];
  }
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
  $("preset").addEventListener("change", (e) => {
    const p = new URLSearchParams({ page: config.slug });
    if (e.target.value) p.set("preset", e.target.value);
    for (const k of ["lock", "hide"]) if (link.get(k)) p.set(k, link.get(k));
    location.href = "class?" + p.toString();
  });
  function commit(name, value) {
    state.values[name] = value;
    state.dirty = true;
    writeURL();
    if (!state.playing) settle();  // while playing, the next frame carries the change
  }
  for (const [name, c] of Object.entries(controls)) {
    c.box.addEventListener("change", () => {
      if (c.slider) c.slider.value = c.box.value;
      commit(name, c.box.value);
    });
    if (c.slider) {
      c.slider.addEventListener("input", () => { c.box.value = c.slider.value; });
      c.slider.addEventListener("change", () => commit(name, c.slider.value));
    }
  }
  // (the menu button and the phone's folded sidebar: class-menu.js)

  // -- share ----------------------------------------------------------------------------------
  const png = new Function("name", config.png_js);
  $("export-png").addEventListener("click", () => png(config.name));
  const copyBtn = $("copy-link");
  const copy = new Function("source", "label", config.copy_js);
  copyBtn.addEventListener("click", () => copy({ set label(v) { copyBtn.textContent = v; } }, "Copy link"));
  $("export-nc").addEventListener("click", (e) => {
    if (!state.run) { e.preventDefault(); alertBox(["Nothing to export yet."], "warning"); }
  });

  request("none");  // the link's values, validated by the server (notices, locks, the run's name)
})();
