// composer playground, the piano roll: each note shaded by how surprising it is, the user's
// notes in cool colours and the model's in warm ones; hovering a note names it. Uses app.js's
// state and $, and bars.js's shadeBars.
"use strict";

// Surprisal colours: light = expected, dark = surprising; fragment notes blue, new notes warm.
const WARM = [[247, 220, 156], [224, 112, 58], [155, 29, 32]];
const COOL = [[199, 214, 230], [91, 127, 176], [35, 50, 95]];

function ramp(stops, t) {
  t = Math.max(0, Math.min(1, t));
  const x = t * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function bits(tune, i) {
  const s = tune.surprisal && tune.surprisal[i];
  return s ? (s.rhythm || 0) + (s.pitch || 0) : null;
}

function isFragment(tune, i) {
  return state.fragmentAll || Boolean(tune.notes[i] && tune.notes[i].fragment);
}

function drawRoll() {
  const tune = state.tune;
  const canvas = $("roll");
  if (!tune || $("output").hidden) return;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);

  const pitched = tune.notes.filter((n) => n.pitch != null);
  const lo = (pitched.length ? Math.min(...pitched.map((n) => n.pitch)) : 60) - 2;
  const hi = (pitched.length ? Math.max(...pitched.map((n) => n.pitch)) : 72) + 2;
  const total = Math.max(1, tune.notes.reduce((t, n) => Math.max(t, n.start + n.duration), 0));
  const pad = 6;
  const x = (q) => pad + (q / total) * (w - 2 * pad);
  const rowH = (h - 2 * pad) / (hi - lo + 1);
  const y = (p) => pad + (hi - p) * rowH;

  for (let p = lo; p <= hi; p++) {            // black-key rows
    if ([1, 3, 6, 8, 10].includes(((p % 12) + 12) % 12)) {
      g.fillStyle = "rgba(60,50,30,0.05)";
      g.fillRect(0, y(p), w, rowH);
    }
  }
  const bar = barQuarters(tune.meter);
  g.lineWidth = 1;
  for (let b = tune.pickup || 0, k = 0; b <= total + 1e-9; b += bar, k++) {   // barlines
    g.strokeStyle = k % 4 === 0 ? "rgba(60,50,30,0.28)" : "rgba(60,50,30,0.12)";
    g.beginPath(); g.moveTo(Math.round(x(b)) + 0.5, 0); g.lineTo(Math.round(x(b)) + 0.5, h); g.stroke();
  }

  shadeBars(g, x, h);  // bars.js: the selected and the locked bars
  const all = tune.notes.map((_, i) => bits(tune, i)).filter((b) => b != null);
  const top = Math.max(6, ...all);
  const frag = (tune.fragment_notes || 0) > 0 ? tune.notes.findIndex((n) => !n.fragment) : -1;
  if (frag > 0 && !state.fragmentAll) {
    const bx = x(tune.notes[frag].start);
    g.fillStyle = "rgba(47,93,80,0.06)";
    g.fillRect(bx, 0, w - bx, h);
    g.setLineDash([4, 4]);
    g.strokeStyle = "#2f5d50";
    g.beginPath(); g.moveTo(bx + 0.5, 0); g.lineTo(bx + 0.5, h); g.stroke();
    g.setLineDash([]);
    g.fillStyle = "#2f5d50";
    g.font = "600 11px system-ui, sans-serif";
    g.fillText("new", bx + 4, 13);
  }

  const rects = [];
  tune.notes.forEach((n, i) => {
    if (n.pitch == null) { rects.push(null); return; }
    const b = bits(tune, i);
    const t = b == null ? 0.3 : b / top;
    const r = { x: x(n.start), y: y(n.pitch), w: Math.max(2, x(n.start + n.duration) - x(n.start) - 1), h: Math.max(2, rowH - 1) };
    rects.push(r);
    g.fillStyle = ramp(isFragment(tune, i) ? COOL : WARM, t);
    g.beginPath();
    g.roundRect ? g.roundRect(r.x, r.y, r.w, r.h, 2) : g.rect(r.x, r.y, r.w, r.h);
    g.fill();
  });
  const cur = state.current;
  if (cur >= 0 && cur < tune.notes.length) {
    const n = tune.notes[cur];
    g.strokeStyle = "#1f2a30";
    g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(x(n.start) + 0.5, 0); g.lineTo(x(n.start) + 0.5, h); g.stroke();
    if (rects[cur]) {
      const r = rects[cur];
      g.lineWidth = 2.5;
      g.strokeStyle = "#f2b950";
      g.strokeRect(r.x - 1.5, r.y - 1.5, r.w + 3, r.h + 3);
    }
  }
  // for hit tests: the note rectangles, and the time (quarter notes) at an x in CSS px
  state.layout = { rects, quarterAt: (px) => ((px - pad) / (w - 2 * pad)) * total };
}

const NAMES = ["C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B"];
const pitchName = (p) => `${NAMES[p % 12]}${Math.floor(p / 12) - 1}`;

// A length in quarter notes (the unit of the API's times), named as a note value where it is one.
const NOTE_VALUES = { 4: "whole note", 3: "dotted half note", 2: "half note",
                      1.5: "dotted quarter note", 1: "quarter note", 0.75: "dotted eighth note",
                      0.5: "eighth note", 0.375: "dotted sixteenth note", 0.25: "sixteenth note",
                      0.125: "thirty-second note" };
function noteLength(quarters) {
  const q = +quarters.toFixed(3);
  return NOTE_VALUES[q] || `${q} quarter notes`;
}

function describe(i) {
  const tune = state.tune;
  const n = tune.notes[i];
  const s = (tune.surprisal || [])[i] || {};
  const f = (v) => (v == null ? "–" : v.toFixed(2));
  const who = isFragment(tune, i) ? "yours" : "new";
  return `note ${i + 1} (${who}): ${n.pitch == null ? "rest" : pitchName(n.pitch)}, ` +
    `${noteLength(n.duration)} · rhythm ${f(s.rhythm)} bits · pitch ${f(s.pitch)} bits`;
}

function onHover(ev) {
  if (!state.layout) return;
  const rect = $("roll").getBoundingClientRect();
  const px = ev.clientX - rect.left;
  const py = ev.clientY - rect.top;
  const i = state.layout.rects.findIndex((r) => r && px >= r.x && px <= r.x + r.w && py >= r.y - 2 && py <= r.y + r.h + 2);
  if (i >= 0) $("hover").textContent = describe(i);
}
