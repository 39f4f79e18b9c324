// composer playground: builds controls from /api/options, composes, continues or scores, shows
// the result and offers downloads. The piano roll is in roll.js, playback in playback.js and
// co-composing (bars selected, regenerated, locked; undo) in bars.js; this file loads last.
"use strict";

const $ = (id) => document.getElementById(id);
const state = Object.seal({  // sealed: a property not declared here cannot be set
  options: null,
  mode: "compose",      // which tab is open
  tune: null,           // last JSON result from the API
  last: null,           // how the last result was made: {endpoint, fields, file}
  fragmentAll: false,   // every note is the user's own (a scored tune)
  notationWidth: 0,     // the width in CSS px the shown notation was engraved for
  playing: null,        // {ctx, master, t0, spq, raf}
  current: -1,          // index of the note being played
  layout: null,         // piano-roll geometry for hit testing
  temperatureSet: false,  // the user moved the temperature (else the server takes the type's)
});

// ---------------------------------------------------------------- API -----------------------

async function api(path, init) {
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new Error("Cannot reach the server. Is `composer serve` still running?");
  }
  if (res.ok) return res;
  let msg = `${res.status} ${res.statusText}`;
  let field = null;
  try {
    const body = await res.json();
    if (body && body.error) { msg = body.error; field = body.field || null; }
  } catch (e) { /* not JSON: keep the status line */ }
  if (res.status === 503) msg = "The server is busy right now; try again in a moment.";
  if (res.status === 413) msg = "That file is larger than 1 MB.";
  const err = new Error(msg);
  err.field = field;
  throw err;
}

function showError(err) {
  const box = $("error");
  box.textContent = err ? err.message : "";
  box.hidden = !err;
  document.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  if (err && err.field) {
    const cont = state.mode === "continue";
    const map = { bars: cont ? "new-bars" : "bars", keep_bars: "keep-bars",
                  form: cont ? "continue-form" : "form-spec" };
    const el = $(map[err.field] || err.field);
    if (el) el.setAttribute("aria-invalid", "true");
  }
}

// ---------------------------------------------------------------- controls ------------------

// The limits of a field, as /api/options advertises them (the page holds none of its own).
function limit(name) {
  const l = state.options.limits[name];
  return { min: l.min, max: l.max };
}

// `names` (optional) maps a value to what the menu shows, such as a style id to its collection.
function fillSelect(sel, values, chosen, names) {
  sel.replaceChildren();
  for (const v of values || []) sel.append(new Option((names || {})[v] || v, v, false, v === chosen));
  if (chosen != null && (values || []).includes(chosen)) sel.value = chosen;
}

async function loadOptions() {
  const [opts, health] = await Promise.all([
    api("/api/options").then((r) => r.json()),
    api("/api/health").then((r) => r.json()),
  ]);
  state.options = opts;
  const d = opts.defaults || {};
  $("model").textContent = `model: ${health.model}`;
  fillSelect($("meter"), opts.meters, d.meter);
  fillSelect($("key"), opts.keys, d.key);
  fillSelect($("mode"), opts.modes, d.mode);
  fillSelect($("style"), opts.styles, d.style, opts.style_names);
  for (const t of opts.types || []) $("type").append(new Option(t, t));
  $("type").addEventListener("change", typeChanged);
  $("form-spec").addEventListener("input", typeChanged);
  for (const [id, name] of [["bars", "bars"], ["new-bars", "bars"], ["keep-bars", "keep_bars"],
                            ["tempo", "tempo"], ["seed", "seed"]]) {
    const l = limit(name);
    $(id).min = l.min;
    $(id).max = l.max;
  }
  $("bars").value = d.bars;
  $("tempo").value = d.tempo;
  const t = limit("temperature");  // a temperature must be above its minimum: one step above
  $("temperature").min = t.min + Number($("temperature").step);
  $("temperature").max = t.max;
  autoTemperature();
}

// Until the user moves the slider, no temperature is sent and the server draws at the tune
// type's: the slider shows the chosen type's, or "auto" where the meter's usual type or the
// uploaded tune's type decides.
function autoTemperature() {
  const usual = (state.options.forms || {})[$("type").value];
  $("temperature").value = usual ? usual.temperature : state.options.defaults.temperature;
  $("temperature-out").textContent = usual ? Number($("temperature").value).toFixed(2) : "auto";
}

// A type brings its usual meter, style and form; with a type or a form, the form sets the bars.
function typeChanged() {
  const usual = ((state.options && state.options.forms) || {})[$("type").value];
  if (usual && usual.meter && (state.options.meters || []).includes(usual.meter)) $("meter").value = usual.meter;
  if (usual && usual.style && (state.options.styles || []).includes(usual.style)) $("style").value = usual.style;
  $("form-spec").placeholder = usual ? `${usual.form} (usual)` : "e.g. AABB";
  $("bars").disabled = Boolean($("type").value || $("form-spec").value.trim());
  if (!state.temperatureSet) autoTemperature();
}

function setTab(mode) {
  state.mode = mode;
  $("tab-compose").setAttribute("aria-selected", String(mode === "compose"));
  $("tab-continue").setAttribute("aria-selected", String(mode === "continue"));
  $("pane-compose").hidden = mode !== "compose";
  $("pane-continue").hidden = mode !== "continue";
  $("go").textContent = mode === "compose" ? "Compose" : "Continue";
  $("score").hidden = mode !== "continue";
  showError(null);
}

function samplingFields() {
  const f = {};
  if (state.temperatureSet) f.temperature = Number($("temperature").value);
  const seed = $("seed").value.trim();
  if (seed !== "") f.seed = Number(seed);
  return f;
}

function composeFields() {
  const f = samplingFields();
  const form = $("form-spec").value.trim();
  if ($("type").value) f.type = $("type").value;
  if (form) f.form = form;
  if (!f.type && !form) f.bars = Number($("bars").value);
  for (const k of ["meter", "key", "mode", "style"]) if ($(k).value) f[k] = $(k).value;
  if ($("tempo").value) f.tempo = Number($("tempo").value);
  return f;
}

function fragmentFile() {
  const file = $("file").files[0];
  if (file) return file;
  const text = $("abc-text").value.trim();
  if (!text) return null;
  return new File([text + "\n"], "pasted.abc", { type: "text/vnd.abc" });
}

function formData(fields, file) {
  const fd = new FormData();
  fd.append("file", file, file.name);
  for (const [k, v] of Object.entries(fields)) fd.append(k, String(v));
  return fd;
}

// The width in CSS px the notation is shown at: the result panel's, less the notation frame's
// padding and border (measured on the panel, which is shown even before the first tune).
function notationWidth() {
  const inner = (el, sides) => {
    const cs = getComputedStyle(el);
    return sides.reduce((t, p) => t + (parseFloat(cs[p]) || 0), 0);
  };
  const panel = $("result");
  const frame = $("notation").parentElement;
  const w = panel.clientWidth - inner(panel, ["paddingLeft", "paddingRight"]) -
    inner(frame, ["paddingLeft", "paddingRight", "borderLeftWidth", "borderRightWidth"]);
  const l = limit("notation_width");
  return Math.max(l.min, Math.min(l.max, Math.floor(w)));
}

// The last request again, optionally as a file (?format=...), with the seed that was used; as
// JSON, its notation is engraved for `width` CSS px.
function request(last, format, width) {
  const q = format ? `?format=${format}` : `?notation_width=${width}`;
  if (last.endpoint === "compose") {
    return api(`/api/compose${q}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(last.fields),
    });
  }
  return api(`/api/${last.endpoint}${q}`, { method: "POST", body: formData(last.fields, last.file) });
}

async function run(endpoint) {
  stop();
  if (endpoint === "compose" && composeAroundLocked()) return;  // bars.js: keep the locked bars
  showError(null);
  let last;
  if (endpoint === "compose") {
    last = { endpoint, fields: composeFields() };
  } else {
    const file = fragmentFile();
    if (!file) { showError(new Error("Choose a file or paste some ABC first.")); return; }
    const fields = endpoint === "continue" ? samplingFields() : {};
    if (endpoint === "continue") {
      fields.bars = Number($("new-bars").value);
      if ($("keep-bars").value) fields.keep_bars = Number($("keep-bars").value);
      if ($("continue-form").value.trim()) fields.form = $("continue-form").value.trim();
    }
    last = { endpoint, fields, file };
  }
  const buttons = [$("go"), $("score"), $("reroll")];
  buttons.forEach((b) => { b.disabled = true; });
  const label = $("go").textContent;
  if (endpoint !== "score") $("go").textContent = "Working…";
  try {
    const width = notationWidth();
    const tune = await (await request(last, null, width)).json();
    if (tune.seed != null) last.fields = { ...last.fields, seed: tune.seed };
    state.last = last;
    state.notationWidth = width;
    show(tune, endpoint);
    reengrave();  // the panel may have changed width while the tune was made
  } catch (err) {
    showError(err);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    $("go").textContent = label;
  }
}

// ---------------------------------------------------------------- result --------------------

function barQuarters(meter) {
  const [n, d] = String(meter || "4/4").split("/").map(Number);
  return (n * 4) / (d || 4);
}

function show(tune, endpoint) {
  state.tune = tune;
  state.current = -1;
  $("placeholder").hidden = true;
  $("output").hidden = false;
  $("title").textContent = tune.title || (endpoint === "score" ? "Your tune" : "Untitled");
  const total = tune.notes.reduce((t, n) => Math.max(t, n.start + n.duration), 0);
  const bars = Math.round((total - (tune.pickup || 0)) / barQuarters(tune.meter) * 10) / 10;
  const chips = $("chips");
  chips.replaceChildren();
  const chip = (text, cls) => {
    const el = document.createElement("span");
    el.className = `chip ${cls || ""}`;
    el.textContent = text;
    chips.append(el);
    return el;
  };
  chip(`${tune.key} ${tune.mode}`);
  chip(tune.meter);
  chip(`${bars} bars`);
  if (tune.type && tune.type !== "other") chip(tune.type);
  if (tune.form && tune.form !== "A") chip(`form ${tune.form}`).id = "form-chip";
  if (tune.style) chip((state.options.style_names || {})[tune.style] || tune.style);
  if (tune.bits_per_note != null) chip(`${tune.bits_per_note.toFixed(2)} bits/note`, "strong").id = "bits";
  if (tune.seed != null) {
    const s = document.createElement("button");
    s.type = "button";
    s.className = "chip seed";
    s.title = "use this seed";
    s.textContent = `seed ${tune.seed}`;
    s.addEventListener("click", () => { $("seed").value = tune.seed; });
    chips.append(s);
  }
  showNotation(tune.svg);
  const continued = (tune.fragment_notes || 0) > 0;
  $("legend-fragment").hidden = !(continued || endpoint === "score");
  $("legend-new-label").textContent = continued ? "new bars" : "surprisal";
  $("legend-fragment-label").textContent = "your fragment";
  state.fragmentAll = endpoint === "score";
  $("dl-musicxml").hidden = endpoint === "score";
  barsShown(tune, endpoint);  // bars.js: history, nearest known tune, bar controls
  drawRoll();
}

function showNotation(svg) {
  const img = $("notation");
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  if (svg) {
    const url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
    img.dataset.url = url;
    img.src = url;
    img.hidden = false;
    $("no-notation").hidden = true;
  } else {
    img.removeAttribute("src");
    img.hidden = true;
    $("no-notation").hidden = false;
  }
}

// When the notation's width changes by more than this share (a phone turned, a window resized),
// it is engraved again for the new width; below it, the image just scales.
const REENGRAVE_CHANGE = 0.1;

async function reengrave() {
  const { tune, last, notationWidth: was } = state;
  if (!tune || !tune.svg || !last) return;
  const width = notationWidth();
  if (Math.abs(width - was) <= REENGRAVE_CHANGE * was) return;
  state.notationWidth = width;
  try {  // the same request and seed: the same tune, engraved anew
    const again = await (await request(last, null, width)).json();
    if (state.tune === tune && state.notationWidth === width && again.svg) {
      tune.svg = again.svg;
      showNotation(again.svg);
    }
  } catch (err) { /* the old notation stays, scaled to fit */ }
}

// ---------------------------------------------------------------- downloads -----------------

function saveBlob(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 2000);
}

function baseName() {
  const t = state.tune;
  const stem = (t.title || "tune").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "tune";
  return t.seed != null ? `${stem}-${t.seed}` : stem;
}

async function download(format) {
  const t = state.tune;
  if (!t) return;
  showError(null);
  try {
    if (format === "mid") {
      const bytes = Uint8Array.from(atob(t.midi), (c) => c.charCodeAt(0));
      saveBlob(new Blob([bytes], { type: "audio/midi" }), `${baseName()}.mid`);
    } else if (format === "abc") {
      saveBlob(new Blob([t.abc], { type: "text/vnd.abc" }), `${baseName()}.abc`);
    } else {
      // MusicXML is made on request: the same request again, with the seed that was used.
      const res = await request(state.last, format);
      const cd = res.headers.get("Content-Disposition") || "";
      const m = cd.match(/filename="([^"]+)"/);
      saveBlob(await res.blob(), m ? m[1] : `${baseName()}.musicxml`);
    }
  } catch (err) {
    showError(err);
  }
}

// ---------------------------------------------------------------- wiring --------------------

function wire() {
  $("tab-compose").addEventListener("click", () => setTab("compose"));
  $("tab-continue").addEventListener("click", () => setTab("continue"));
  $("form").addEventListener("submit", (ev) => { ev.preventDefault(); run(state.mode); });
  $("score").addEventListener("click", () => run("score"));
  $("reroll").addEventListener("click", () => {
    $("seed").value = Math.floor(Math.random() * 2 ** 31);
    run(state.mode);
  });
  $("temperature").addEventListener("input", () => {
    state.temperatureSet = true;
    $("temperature-auto").hidden = false;
    $("temperature-out").textContent = Number($("temperature").value).toFixed(2);
  });
  $("temperature-auto").addEventListener("click", () => {
    state.temperatureSet = false;
    $("temperature-auto").hidden = true;
    autoTemperature();
  });
  $("play").addEventListener("click", () => (state.playing ? stop() : play()));
  $("dl-mid").addEventListener("click", () => download("mid"));
  $("dl-abc").addEventListener("click", () => download("abc"));
  $("dl-musicxml").addEventListener("click", () => download("musicxml"));
  $("roll").addEventListener("mousemove", onHover);
  $("roll").addEventListener("click", onHover);
  const file = $("file");
  const updateFile = () => {
    const f = file.files[0];
    $("file-name").textContent = f ? `${f.name} (${Math.ceil(f.size / 1024)} KB)` : "or drop it here";
    $("clear-file").hidden = !f;
  };
  file.addEventListener("change", updateFile);
  $("clear-file").addEventListener("click", () => { file.value = ""; updateFile(); });
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer.files.length) { file.files = ev.dataTransfer.files; updateFile(); }
  });
  let resize = 0;
  let engrave = 0;
  window.addEventListener("resize", () => { cancelAnimationFrame(resize); resize = requestAnimationFrame(drawRoll); });
  new ResizeObserver(() => { clearTimeout(engrave); engrave = setTimeout(reengrave, 250); }).observe($("result"));
  wireBars();
}

wire();
loadOptions().catch(showError);
