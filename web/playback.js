// composer playground, playback: the tune as played, on a small WebAudio synth, with the
// piano roll following along. Uses app.js's state and $, and roll.js's drawRoll.
"use strict";

// A long note's envelope: attack to 1, decay to the sustain level, hold, release to the floor.
const ENVELOPE = { attack: 0.012, decay: 0.12, sustain: 0.55, release: 0.04, floor: 0.0001 };

// The gain envelope of a note sounding from `start` to `end` (s), as [AudioParam method, value,
// time] in time order. A short note gets a shorter attack and release and only the part of the
// decay that fits, so that its gain always rises, then only falls, and is silent at `end`.
function envelope(start, end) {
  const e = ENVELOPE;
  const len = end - start;
  const peak = start + Math.min(e.attack, len * 0.25);
  const release = end - Math.min(e.release, len * 0.4);
  const decayEnd = Math.min(start + e.decay, release);
  // where a long note's exponential decay is by decayEnd
  const level = Math.pow(e.sustain, (decayEnd - peak) / (start + e.decay - peak));
  const points = [["setValueAtTime", 0, start], ["linearRampToValueAtTime", 1, peak],
                  ["exponentialRampToValueAtTime", level, decayEnd]];
  if (release > decayEnd) points.push(["setValueAtTime", level, release]);
  points.push(["linearRampToValueAtTime", e.floor, end]);
  return points;
}

function play() {
  const tune = state.tune;
  if (!tune) return;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) { showError(new Error("This browser cannot play audio.")); return; }
  const ctx = new Ctx();
  const master = ctx.createGain();
  master.gain.value = 0.22;
  master.connect(ctx.destination);
  const spq = 60 / (tune.tempo || 120);
  const t0 = ctx.currentTime + 0.08;
  for (const n of tune.notes) {
    if (n.pitch == null) continue;
    const start = t0 + n.start * spq;
    const end = start + Math.max(0.05, n.duration * spq * 0.92);
    const freq = 440 * Math.pow(2, (n.pitch - 69) / 12);
    const env = ctx.createGain();
    for (const [method, value, time] of envelope(start, end)) env.gain[method](value, time);
    env.connect(master);
    // A triangle with a quiet octave above: a soft, whistle-like voice.
    for (const [type, mult, level] of [["triangle", 1, 1], ["sine", 2, 0.18]]) {
      const osc = ctx.createOscillator();
      const lvl = ctx.createGain();
      osc.type = type;
      osc.frequency.value = freq * mult;
      lvl.gain.value = level;
      osc.connect(lvl).connect(env);
      osc.start(start);
      osc.stop(end + 0.02);
    }
  }
  const total = tune.notes.reduce((t, n) => Math.max(t, n.start + n.duration), 0);
  state.playing = { ctx, master, t0, spq, total, raf: 0 };
  $("play").textContent = "■ Stop";
  $("roll").dataset.playing = "true";
  const tick = () => {
    const p = state.playing;
    if (!p) return;
    const q = (p.ctx.currentTime - p.t0) / p.spq;
    if (q > p.total + 0.1) { stop(); return; }
    const i = tune.notes.findIndex((n) => q >= n.start && q < n.start + n.duration);
    if (i !== state.current) {
      state.current = i;
      $("roll").dataset.current = String(i);
      drawRoll();
    }
    p.raf = requestAnimationFrame(tick);
  };
  state.playing.raf = requestAnimationFrame(tick);
}

function stop() {
  const p = state.playing;
  if (!p) return;
  state.playing = null;
  cancelAnimationFrame(p.raf);
  try {
    p.master.gain.setTargetAtTime(0, p.ctx.currentTime, 0.02);
    setTimeout(() => p.ctx.close().catch(() => {}), 120);
  } catch (e) { /* already closed */ }
  state.current = -1;
  $("play").textContent = "▶ Play";
  $("roll").dataset.playing = "false";
  $("roll").dataset.current = "-1";
  drawRoll();
}
