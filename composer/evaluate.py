"""Evaluate a model on a dataset split against the Markov baseline, plus distribution similarity
(Yang & Lerch 2018) of generated tunes and key consistency of continuations."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .batches import Batches
from .checkpoint import LoadedModel, load_model
from .modelfiles import sha256_file
from .conform import conform, map_label
from .dataset import SPLITS, Dataset, DatasetError
from .distributions import distribution_similarity
from .encoding import PAD, decode
from .markov import DEFAULT_ORDER, MarkovModel
from .model import bits, nll_terms
from .music import Melody, Meter, MusicError, Note, key_spelling, tonic_pitch_class
from .sample import Composer, ComposeRequest, SamplingOptions

BASELINES = ("markov", "none")
METRIC_KEYS = ("bits_per_note", "rhythm_bits", "pitch_bits", "duration_accuracy",
               "pitch_accuracy")


# --- bits/note and accuracy ------------------------------------------------------------------
def evaluate_model(model: torch.nn.Module, ds: Dataset, indices, batch_size: int = 64,
                   device: str | torch.device = "cpu") -> dict:
    """Bits/note (rhythm, pitch, total; counted as model.nll_terms does: per note plus one END
    per tune), top-1 duration accuracy, and pitch accuracy given the true next duration.
    Whole tunes in padded batches of similar length, built as train.py builds them."""
    indices = np.asarray(indices, np.int64)
    window = int(ds.lengths()[indices].max()) + 1 if len(indices) else 1
    data = Batches(ds, indices, window)
    r_nats = p_nats = 0.0
    events = notes = r_hits = p_hits = 0
    model.eval()
    with torch.inference_mode():
        for items in data.plan(batch_size, seed=0, epoch=0, shuffle=False):
            batch = data.collate(items, torch.device(device))
            dur_logits, pitch_logits = model(batch)
            r, p, n = nll_terms(batch, dur_logits, pitch_logits)
            r_nats, p_nats, events = r_nats + float(r), p_nats + float(p), events + int(n)
            dmask, pmask = batch["dur_out"] != PAD, batch["pitch_out"] != PAD
            r_hits += int(((dur_logits.argmax(-1) == batch["dur_out"]) & dmask).sum())
            p_hits += int(((pitch_logits.argmax(-1) == batch["pitch_out"]) & pmask).sum())
            notes += int(pmask.sum())
    rhythm, pitch = bits(r_nats, events), bits(p_nats, events)
    return {"bits_per_note": rhythm + pitch, "rhythm_bits": rhythm, "pitch_bits": pitch,
            "duration_accuracy": r_hits / max(events, 1), "pitch_accuracy": p_hits / max(notes, 1),
            "tunes": len(indices), "notes": notes, "events": events}


# --- generated tunes: similarity, bar counts, key consistency of continuations ---------------
def key_name_for(tonic: int, mode: str, keys: list[str]) -> str:
    """A key name from `keys` (the sampler's spellings) for a tonic pitch class."""
    usual = key_spelling(tonic, mode)
    same = [k for k in keys if tonic_pitch_class(k) == tonic % 12]
    return usual if usual in same else (same[0] if same else usual)


def pick_templates(ds: Dataset, indices, count: int, seed: int = 0) -> list[Melody]:
    """`count` tunes of `indices`, decoded in their original keys: a random sample without
    replacement, or every tune again in turn when more are asked for than there are."""
    indices = np.asarray(indices)
    if len(indices) == 0:
        raise MusicError("the split has no tunes to take meters, keys and lengths from")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(indices) for _ in range(-(-count // len(indices)))])
    return [decode(ds.tune(int(i)), ds.vocab) for i in order[:count]]


def generate_like(composer: Composer, templates: list[Melody], seed: int = 0
                  ) -> tuple[list[Melody], dict]:
    """One generated tune per template, asking for its meter, key, mode, style, pickup and
    number of complete bars (with the default sampling options). Returns the tunes and
    {"requests": n, "requested_bars_exact": fraction of tunes with exactly the requested
    number of complete bars, "pickups_dropped": requests retried without the pickup because
    the model's durations cannot fill it}."""
    opts = composer.options()
    exact = dropped = 0
    out = []
    for i, t in enumerate(templates):
        mode = map_label(opts["modes"], "mode", t.mode)
        meter = map_label(opts["meters"], "meter", str(t.meter))
        req = ComposeRequest(
            bars=_clamp_bars(t.complete_bars(), opts), meter=meter, mode=mode,
            key=key_name_for(t.tonic, mode, opts["keys"]),
            style=t.style if t.style in opts["styles"] else None,
            pickup=t.pickup if Meter.parse(meter).bar_ticks == t.meter.bar_ticks else 0,
            sampling=SamplingOptions(seed=seed + i))
        try:
            mel = composer.compose(req).melody
        except MusicError:
            if not req.pickup:
                raise
            dropped += 1
            mel = composer.compose(replace(req, pickup=0)).melody
        exact += mel.complete_bars() == req.bars
        out.append(mel)
    return out, {"requests": len(templates), "pickups_dropped": dropped,
                 "requested_bars_exact": exact / max(len(templates), 1)}


def _clamp_bars(bars: int, opts: dict) -> int:
    limits = opts.get("limits", {}).get("bars", (1, 64))
    lo, hi = (limits["min"], limits["max"]) if isinstance(limits, dict) else limits
    return int(min(max(bars, lo), hi))


def detect_key(notes: list[Note]) -> str | None:
    """music21's key analysis as 'tonic pitch class mode' ('2 major' for D major), or None
    when there are no pitches to analyse."""
    from fractions import Fraction

    from music21 import note as m21note
    from music21 import stream

    s = stream.Stream()
    for n in notes:
        ql = Fraction(n.duration, 24)
        s.append(m21note.Rest(quarterLength=ql) if n.pitch is None
                 else m21note.Note(midi=n.pitch, quarterLength=ql))
    if not any(n.pitch is not None for n in notes):
        return None
    k = s.analyze("key")
    return f"{k.tonic.pitchClass} {k.mode}"


def key_consistency(composer: Composer, tunes: list[Melody], seed: int = 0) -> dict:
    """Split each tune at half its bars; continue the first half with the sampler and compare
    the detected key of the fragment with that of the continuation. The same comparison on the
    real second halves is the reference rate."""
    gen = real = used = 0
    for i, t in enumerate(tunes):
        bars = t.complete_bars()
        if bars < 2:
            continue
        keep = bars // 2
        fragment, rest = t.split_at_bar(keep)
        comp = composer.continue_melody(t, bars=bars - keep, keep_bars=keep,
                                        sampling=SamplingOptions(seed=seed + i))
        notes = comp.melody.notes
        frag_key = detect_key(notes[:comp.fragment_notes])
        gen += frag_key is not None and frag_key == detect_key(notes[comp.fragment_notes:])
        real_key = detect_key(fragment)
        real += real_key is not None and real_key == detect_key(rest)
        used += 1
    return {"tunes": used, "continuation_key_match": gen / max(used, 1),
            "real_key_match": real / max(used, 1)}


# --- the whole report ------------------------------------------------------------------------
def evaluate(model_dir: str | Path, data_path: str | Path, split: str = "test",
             baseline: str = "markov", samples: int = 0, continuations: int = 0, seed: int = 0,
             device: str = "cpu", batch_size: int = 64, markov_order: int = DEFAULT_ORDER
             ) -> dict:
    """The evaluation report (a JSON-able dict): `model` and `markov` metrics on the split
    (`markov` is None with baseline='none'), `data` (what was evaluated, what had to be
    snapped), and with samples/continuations > 0 the `samples` and `continuations` checks."""
    if baseline not in BASELINES:
        raise MusicError(f"unknown baseline {baseline!r}; valid: {', '.join(BASELINES)}")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded: LoadedModel = load_model(model_dir, device)
    ds = Dataset.load(data_path)
    indices = ds.indices(split)
    if not len(indices):
        counts = ", ".join(f"{name} {len(ds.indices(name))}" for name in SPLITS)
        raise DatasetError(f"the {split} split of {data_path} is empty ({counts} tunes); "
                           "choose another --split, or ingest more tunes")
    composer = None  # the sampler, for generating and for its default style
    if samples or continuations or ds.vocab.to_dict() != loaded.vocab.to_dict():
        composer = Composer.load(model_dir)  # step by step, on the CPU
    conf = conform(ds, loaded.vocab, indices, composer and composer.default_style)
    seconds["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trained_on = (loaded.config.get("data") or {}).get("sha256")
    report: dict = {"model_dir": str(model_dir), "data": {
        "file": str(data_path), "split": split, "tunes": len(indices), **conf.report(),
        # False: the model saw another file (or an older version of this one), whose split
        # may differ, so its training tunes may be among these
        "trained_on_this_file": trained_on == sha256_file(data_path) if trained_on else None}}
    report["model"] = evaluate_model(loaded.model, conf.dataset, conf.indices, batch_size,
                                     device) | {"arch": loaded.cfg.arch}
    seconds["model"] = time.perf_counter() - t0
    report["markov"] = None
    if baseline == "markov":
        t0 = time.perf_counter()
        if len(ds.indices("train")):
            markov = MarkovModel.fit(ds, markov_order)
            report["markov"] = markov.evaluate(ds, split)
        else:
            report["data"]["note"] = "no train split in the file: no Markov baseline"
        seconds["markov"] = time.perf_counter() - t0
    if samples:
        t0 = time.perf_counter()
        templates = pick_templates(ds, indices, samples, seed)
        generated, counts = generate_like(composer, templates, seed)
        reference = pick_templates(ds, indices, min(samples, len(indices)), seed)
        report["samples"] = counts | {"reference_tunes": len(reference),
                                      "features": distribution_similarity(generated, reference)}
        seconds["samples"] = time.perf_counter() - t0
    if continuations:
        t0 = time.perf_counter()
        tunes = pick_templates(ds, indices, min(continuations, len(indices)), seed + 1)
        report["continuations"] = key_consistency(composer, tunes, seed)
        seconds["continuations"] = time.perf_counter() - t0
    report["seconds"] = seconds
    return report


def format_report(report: dict) -> str:
    """A small human-readable table of the report."""
    d = report["data"]
    lines = [f"{d['file']} [{d['split']}]: {report['model']['tunes']} tunes, "
             f"{report['model']['notes']} notes"]
    if d["snapped_notes"] or d["skipped_tunes"] or d["unknown_labels"]:
        lines.append(f"vocabulary mismatch: {d['snapped_notes']} notes in {d['snapped_tunes']} "
                     f"tunes snapped, {d['skipped_tunes']} tunes skipped, unknown labels "
                     f"{d['unknown_labels'] or 'none'}")
    if d.get("trained_on_this_file") is False:
        lines.append("warning: the model was trained on another version of this dataset file; "
                     "its training tunes may be in this split")
    lines += ["", f"{'':18} {'bits/note':>9} {'rhythm':>7} {'pitch':>7} {'dur acc':>8} "
                  f"{'pitch acc':>9}"]
    rows = [(f"model ({report['model']['arch']})", report["model"])]
    if report.get("markov"):
        rows.append((f"markov (order {report['markov']['order']})", report["markov"]))
    for name, m in rows:
        lines.append(f"{name:18} {m['bits_per_note']:9.3f} {m['rhythm_bits']:7.3f} "
                     f"{m['pitch_bits']:7.3f} {m['duration_accuracy']:8.3f} "
                     f"{m['pitch_accuracy']:9.3f}")
    if report.get("markov"):
        gain = 1 - report["model"]["bits_per_note"] / report["markov"]["bits_per_note"]
        lines.append(f"model vs markov: {abs(gain):.1%} {'fewer' if gain >= 0 else 'more'} "
                     "bits/note")
    if "samples" in report:
        s = report["samples"]
        lines += ["", f"{s['requests']} generated vs {s['reference_tunes']} reference tunes "
                      f"(requested bars exact: {s['requested_bars_exact']:.0%})",
                  f"{'feature':22} {'overlap':>8} {'KL':>8}"]
        lines += [f"{k:22} {v['overlap']:8.3f} {v['kl']:8.3f}" for k, v in s["features"].items()]
    if "continuations" in report:
        c = report["continuations"]
        lines += ["", f"key kept by continuations: {c['continuation_key_match']:.0%} "
                      f"(real second halves: {c['real_key_match']:.0%}; {c['tunes']} tunes)"]
    return "\n".join(lines)
