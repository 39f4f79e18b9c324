// composer playground, co-composing: select bars in the notation or the piano roll (click,
// shift-click for a range), regenerate them, lock bars through later "Compose" presses (which then write only the
// unlocked bars), undo and redo. Bars are the tune's written bars, as the API numbers them
// (`bar` of each note; 0 is a pickup), so a bar chosen in one playing of a repeat is chosen in
// both. Uses app.js's state, $, api, formData, notationWidth, samplingFields, show, drawRoll.
"use strict";

const bars = Object.seal({
  selected: new Set(),  // written bar numbers chosen
  anchor: null,         // the bar a shift-click extends from
  locked: new Set(),    // bars kept through "Compose" presses
  past: [],             // earlier versions: {tune, last, endpoint}
  future: [],           // undone versions, for redo
  current: null,        // the version shown: {tune, last, endpoint}
  replaying: false,     // showing a version from the history, not a new one
});

function tuneBars(tune) {
  return tune ? Math.max(0, ...tune.notes.map((n) => n.bar || 0)) : 0;
}

// "3,4,5,8" -> "3-5,8", as the API's `bars` field takes them.
function rangesOf(set) {
  const xs = [...set].filter((b) => b >= 1).sort((a, b) => a - b);
  const out = [];
  for (let i = 0; i < xs.length; i++) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++;
    out.push(i === j ? `${xs[i]}` : `${xs[i]}-${xs[j]}`);
    i = j;
  }
  return out.join(",");
}

// The played spans [start, end) in quarter notes of the written bars in `set`.
function barSpans(tune, set) {
  const spans = [];
  for (const n of tune.notes) {
    if (!set.has(n.bar)) continue;
    const last = spans[spans.length - 1];
    if (last && last.bar === n.bar && Math.abs(last.end - n.start) < 1e-6) last.end = n.start + n.duration;
    else spans.push({ bar: n.bar, start: n.start, end: n.start + n.duration });
  }
  return spans;
}

// Shade the selected and the locked bars on the piano roll (called by drawRoll).
function shadeBars(g, x, h) {
  const tune = state.tune;
  if (!tune) return;
  for (const [set, fill] of [[bars.locked, "rgba(35,50,95,0.10)"], [bars.selected, "rgba(242,185,80,0.28)"]]) {
    g.fillStyle = fill;
    for (const s of barSpans(tune, set)) g.fillRect(x(s.start), 0, x(s.end) - x(s.start), h);
  }
}

// The written bar under a click on the roll: the note there, else the nearest one.
function barAt(ev) {
  if (!state.layout) return null;
  const q = state.layout.quarterAt(ev.clientX - $("roll").getBoundingClientRect().left);
  let best = null;
  for (const n of state.tune.notes) {
    const d = q < n.start ? n.start - q : q >= n.start + n.duration ? q - n.start - n.duration : 0;
    if (!best || d < best.d) best = { d, bar: n.bar };
  }
  return best ? best.bar : null;
}

// Where each written bar lies in the notation, as fractions of the image: verovio draws one
// "measure" group per written bar (the pickup first), its staff lines spanning the bar.
function measureBoxes(svg) {
  // its styles left out: the page's policy refuses inline styles even in a parsed document
  const bare = svg.replace(/<style[\s\S]*?<\/style>/g, "").replace(/ style="[^"]*"/g, "");
  const doc = new DOMParser().parseFromString(bare, "image/svg+xml");
  const view = doc.querySelector("svg[viewBox]");
  const margin = doc.querySelector("g.page-margin");
  if (!view) return [];
  const [, , vw, vh] = view.getAttribute("viewBox").split(/\s+/).map(Number);
  const shift = ((margin && margin.getAttribute("transform")) || "").match(/-?[\d.]+/g) || [0, 0];
  const [dx, dy] = shift.map(Number);
  return [...doc.querySelectorAll("g.measure")].map((m) => {
    const xs = [], ys = [];
    for (const p of m.querySelectorAll("g.staff > path")) {
      const v = (p.getAttribute("d").match(/-?[\d.]+/g) || []).map(Number);
      xs.push(v[0], v[2]);
      ys.push(v[1], v[3]);
    }
    return { x0: (Math.min(...xs) + dx) / vw, x1: (Math.max(...xs) + dx) / vw,
             y0: (Math.min(...ys) + dy) / vh, y1: (Math.max(...ys) + dy) / vh };
  });
}

// The written bar under a click on the notation: the measure whose staff is nearest.
function barInNotation(ev) {
  const tune = state.tune;
  if (!tune || !tune.svg) return null;
  const r = $("notation").getBoundingClientRect();
  const fx = (ev.clientX - r.left) / r.width;
  const fy = (ev.clientY - r.top) / r.height;
  let best = null;
  measureBoxes(tune.svg).forEach((b, k) => {
    const d = Math.max(0, b.x0 - fx, fx - b.x1) + Math.max(0, b.y0 - fy, fy - b.y1);
    if (!best || d < best.d) best = { d, k };
  });
  if (!best) return null;
  return (tune.pickup || 0) > 0 ? best.k : best.k + 1;  // measure 0 is the pickup, if any
}

function onBarClick(ev, bar) {
  if (!state.tune) return;
  if (bar === undefined) bar = barAt(ev);
  if (bar == null || bar < 1) return;
  if (ev.shiftKey && bars.anchor != null) {
    bars.selected.clear();
    const [a, b] = [Math.min(bars.anchor, bar), Math.max(bars.anchor, bar)];
    for (let k = a; k <= b; k++) bars.selected.add(k);
  } else if (bars.selected.size === 1 && bars.selected.has(bar)) {
    bars.selected.clear();
    bars.anchor = null;
  } else {
    bars.selected = new Set([bar]);
    bars.anchor = bar;
  }
  updateBarControls();
  drawRoll();
}

function updateBarControls() {
  const any = bars.selected.size > 0;
  const sel = rangesOf(bars.selected);
  $("bar-status").textContent = any ? `bars ${sel} selected` :
    bars.locked.size ? `bars ${rangesOf(bars.locked)} locked` : "click a bar in the notation or the piano roll to select it; shift-click for a range";
  $("regenerate").disabled = !any;
  const allLocked = any && [...bars.selected].every((b) => bars.locked.has(b));
  $("lock").disabled = !any;
  $("lock").textContent = allLocked ? "Unlock" : "Lock";
  $("undo").disabled = bars.past.length === 0;
  $("redo").disabled = bars.future.length === 0;
}

function toggleLock() {
  const allLocked = [...bars.selected].every((b) => bars.locked.has(b));
  for (const b of bars.selected) { if (allLocked) bars.locked.delete(b); else bars.locked.add(b); }
  bars.selected.clear();
  updateBarControls();
  drawRoll();
}

// Write the bars in `ranges` of the shown tune anew (POST /api/infill).
async function infill(ranges) {
  const tune = state.tune;
  const file = new File([tune.abc], "tune.abc", { type: "text/vnd.abc" });
  const fields = { ...samplingFields(), bars: ranges };
  const last = { endpoint: "infill", fields, file };
  const buttons = [$("go"), $("regenerate"), $("lock")];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const width = notationWidth();
    const result = await (await request(last, null, width)).json();
    last.fields = { ...fields, seed: result.seed };
    state.last = last;
    state.notationWidth = width;
    show(result, "infill");
  } catch (err) {
    showError(err);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    updateBarControls();
  }
}

// A "Compose" press while bars are locked: the unlocked bars of the shown tune, written anew.
// Returns false when nothing is locked (an ordinary compose follows).
function composeAroundLocked() {
  const tune = state.tune;
  if (!tune || !bars.locked.size || state.mode !== "compose") return false;
  const free = new Set();
  for (let b = 1; b <= tuneBars(tune); b++) if (!bars.locked.has(b)) free.add(b);
  if (!free.size) { showError(new Error("Every bar is locked: unlock some to compose again.")); return true; }
  showError(null);
  infill(rangesOf(free));
  return true;
}

// Called by show(): a new version goes into the history; the nearest known tune is named.
function barsShown(tune, endpoint) {
  if (!bars.replaying && bars.current && bars.current.tune !== tune) {
    bars.past.push(bars.current);
    bars.future = [];
  }
  bars.current = { tune, last: state.last, endpoint };
  if (endpoint !== "infill" && !bars.replaying) bars.locked.clear();  // a new tune's own bars
  bars.selected.clear();
  const near = tune.nearest;
  const line = $("nearest");
  line.hidden = !near;
  if (near) {
    const name = (state.options.style_names || {})[near.style] || near.style;
    line.textContent = `Closest known tune: ${near.title || "untitled"} (${name}), similarity ` +
      `${near.similarity.toFixed(2)}${near.bars ? `, bars in common ${near.bars}` : ""}`;
  }
  const infilled = (tune.new_notes || []).length > 0;
  if (infilled) {
    $("legend-fragment").hidden = false;
    $("legend-fragment-label").textContent = "kept bars";
    $("legend-new-label").textContent = "new bars";
  }
  updateBarControls();
}

function replay(from, to) {
  if (!from.length) return;
  to.push(bars.current);
  const v = from.pop();
  bars.current = null;
  bars.replaying = true;
  try {
    state.last = v.last;
    show(v.tune, v.endpoint);
  } finally {
    bars.replaying = false;
  }
  updateBarControls();
}

function wireBars() {
  $("roll").addEventListener("click", (ev) => onBarClick(ev));
  $("notation").addEventListener("click", (ev) => onBarClick(ev, barInNotation(ev)));
  $("regenerate").addEventListener("click", () => infill(rangesOf(bars.selected)));
  $("lock").addEventListener("click", toggleLock);
  $("undo").addEventListener("click", () => replay(bars.past, bars.future));
  $("redo").addEventListener("click", () => replay(bars.future, bars.past));
  document.addEventListener("keydown", (ev) => {
    if (!(ev.ctrlKey || ev.metaKey) || ev.key.toLowerCase() !== "z") return;
    if (["INPUT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
    ev.preventDefault();
    if (ev.shiftKey) replay(bars.future, bars.past); else replay(bars.past, bars.future);
  });
  updateBarControls();
}
