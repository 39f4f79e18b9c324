"""Compose, continue and score melodies with a trained model: the API that the CLI and web app use.

Tunes are generated at tonic C in the requested mode and then transposed; the bar and pitch
constraints are enforced while sampling (see generate). Every generated note carries its
surprisal under the model, and `score` gives the same numbers for any tune.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from .encoding import BOS, N_SPECIAL, REST, Vocab, encode, streams
from .engine import network_for
from .form import Form, bars_after_pickup
from .formfeatures import FormTracker, Layout, form_streams, tune_form, tune_ticks
from .generate import RhythmPlan, Start, bits, rhythm_plan, sample
from .modelchoices import MAX_TITLE, ModelChoices, model_facts, tune_title
from .modelconfig import form_keys, reads_closes
from .modelfiles import CheckpointError
from .music import (TICKS_PER_QUARTER, Melody, Meter, MusicError, Note, nearest_shift,
                    normalize_mode, pitch_name, tonic_name, tonic_pitch_class)
from .requests import (DEFAULT_METER, LIMITS, ComposeRequest, Composition, NoteScore,
                       SamplingOptions, ScoreReport)

__all__ = ["Composer", "ComposeRequest", "Composition", "LIMITS", "NoteScore", "SamplingOptions",
           "ScoreReport"]

_MAX_ROWS = 256  # sequences sampled in one batch; more tunes are sampled in several batches


# --- the composer ----------------------------------------------------------------------------
class Composer:
    """A loaded model with everything needed to compose, continue and score tunes."""

    def __init__(self, loaded, name: str = "", engine: str = "auto"):
        """`loaded`: a model folder as read (modelfiles.ModelWeights), or a torch model
        (checkpoint.LoadedModel). engine: "auto" (the numpy engine where it runs the model,
        else torch), "numpy" or "torch"."""
        self.cfg = loaded.cfg
        self.vocab: Vocab = loaded.vocab
        self.config: dict = loaded.config
        self.name = name
        self.net = network_for(loaded, engine)
        self._plans: dict[tuple, RhythmPlan] = {}
        self._ticks = np.array([0] * N_SPECIAL + list(self.vocab.durations), np.int64)
        self.choices = ModelChoices(self.vocab, self.config, self.net.label_keys)
        self.forms = self.choices.forms
        self.default_style = self.choices.default_style

    @classmethod
    def load(cls, model_dir: str | Path | None = None, engine: str = "auto") -> "Composer":
        """Load a model folder (None: the shipped default model)."""
        from .modelfiles import default_model_dir, read_weights

        try:
            directory = Path(model_dir) if model_dir else default_model_dir()
        except ModuleNotFoundError:  # running from a source tree that was never installed
            directory = Path("models") / "folk"
        if not directory.is_dir():
            hint = "" if model_dir else ("; the default model is not installed -- train one with "
                                         "`composer train` and pass --model DIR")
            raise CheckpointError(f"model directory not found: {directory}{hint}")
        return cls(read_weights(directory), name=directory.name, engine=engine)

    # --- options -----------------------------------------------------------------------------
    def options(self) -> dict:
        """Valid values, limits and defaults, for a CLI, an API or a form."""
        return self.choices.options()

    def info(self) -> dict:
        """The facts `composer info` shows: what the model is and what it can be asked for."""
        return model_facts(self.name, self.cfg, self.config, self.choices)

    def _layout(self, form: Form, meter: Meter, start: int, total: int) -> Layout:
        if not 1 <= form.written_bars <= LIMITS["bars"][1]:
            raise MusicError(f"the form has {form.written_bars} bars; at most "
                             f"{LIMITS['bars'][1]}", field="form")
        return Layout.of(form, meter.bar_ticks, start, total)

    def _pitch_bias(self, low: int, high: int, shift: int) -> np.ndarray:
        """Mask over pitch tokens: REST and the pitches low..high of the output, which is the
        model's range (at tonic C) moved by `shift` semitones. At least an octave of the
        model's range must be left, or the tune would be bars of rests."""
        v = self.vocab
        lo, hi = max(low - shift, v.pitch_low), min(high - shift, v.pitch_high)
        if high - low < 12:
            raise MusicError(f"the range {pitch_name(low)}..{pitch_name(high)} ({low}..{high}) "
                             "is narrower than an octave; give --low and --high at least 12 "
                             "semitones apart", field="low")
        if hi - lo < 12:
            raise MusicError(f"in this key the model writes {pitch_name(v.pitch_low + shift)}.."
                             f"{pitch_name(v.pitch_high + shift)} ({v.pitch_low + shift}.."
                             f"{v.pitch_high + shift}); {pitch_name(low)}..{pitch_name(high)} "
                             "leaves less than an octave of it", field="low")
        bias = np.full(v.n_pitches, -np.inf, np.float32)
        bias[REST] = 0.0
        bias[v.pitch_token(lo):v.pitch_token(hi) + 1] = 0.0
        return bias

    def _plan(self, meter: Meter, end_position: int, remaining: int, lay: Layout | None = None,
              end: int | None = None) -> RhythmPlan:
        """The rhythm plan for `remaining` ticks up to tick `end` of the tune (None: its end);
        with a layout, no note crosses the end of a part or of an ending (where the music
        jumps when played)."""
        end = lay.total if end is None and lay is not None else end
        barriers = () if lay is None else tuple(end - t for t in lay.jumps
                                                 if 0 < end - t < remaining)
        key = (str(meter), end_position, barriers)
        plan = self._plans.get(key)
        if plan is None or len(plan.reach) <= remaining:
            # grow in whole 32-bar steps so that different lengths share one table
            span = meter.bar_ticks * 32 * (remaining // (meter.bar_ticks * 32) + 1)
            plan = self._plans[key] = rhythm_plan(self.vocab, meter, end_position, span, barriers)
        if not plan.reach[remaining]:
            raise MusicError(f"the model's durations cannot fill {remaining} ticks of {meter} "
                             "exactly; try another meter or number of bars", field="meter")
        return plan

    # --- public API -------------------------------------------------------------------------
    def compose(self, req: ComposeRequest) -> Composition:
        """One new tune (the most likely of `best_of` samples)."""
        return self.compose_many(req, 1)[0]

    def compose_many(self, req: ComposeRequest, count: int) -> list[Composition]:
        """`count` new tunes sampled in one batch (count * best_of rows)."""
        opts = req.sampling
        opts.validate()
        c0, c1 = LIMITS["count"]
        if not c0 <= int(count) <= c1:
            raise MusicError(f"count must be in {c0}..{c1}, got {count}", field="count")
        b0, b1 = LIMITS["bars"]
        if req.bars is not None and (not isinstance(req.bars, int) or not b0 <= req.bars <= b1):
            raise MusicError(f"bars must be in {b0}..{b1}, got {req.bars}", field="bars")
        if req.bars is not None and req.form:
            raise MusicError("give bars or a form, not both: the form sets the bars", field="form")
        given_type = self.forms.check(req.tune_type) if req.tune_type else None
        meter = self.choices.meter(req.meter or (self.forms.usual(given_type)["meter"] if given_type
                                          else DEFAULT_METER))
        tune_type = self.choices.tune_type(given_type, "", meter)
        opts = self.choices.sampling(opts, tune_type)
        form = self.forms.compose_form(given_type, req.form, req.bars, req.endings)
        try:
            mode = normalize_mode(req.mode)
        except MusicError:
            mode = str(req.mode)
        mode = self.choices.label("mode", mode)
        key = tonic_name(str(req.key), mode)  # as asked: F# stays F#, Gb stays Gb
        # no style or pickup asked: the type's usual ones (the type asked, or the meter's usual
        # one); a type's pickup only in its usual meter
        usual = self.forms.usual(tune_type)
        style = self.choices.style(req.style or self.choices.type_style(tune_type))
        pickup = req.pickup if req.pickup is not None else (
            int(usual.get("pickup", 0)) if usual.get("meter") == str(meter) else 0)
        t0, t1 = LIMITS["tempo"]
        if not t0 <= float(req.tempo) <= t1:
            raise MusicError(f"tempo must be in {t0:g}..{t1:g} quarter notes per minute",
                             field="tempo")
        bar = meter.bar_ticks
        if not 0 <= pickup < bar:
            raise MusicError(f"pickup must be shorter than a bar of {meter} "
                             f"({bar / TICKS_PER_QUARTER:g} quarter notes)", field="pickup")
        tonic = tonic_pitch_class(key)
        shift = nearest_shift(0, tonic)
        start = (bar - pickup) % bar
        total = form.written_bars * bar
        lay = self._layout(form, meter, start, total)
        plan = self._plan(meter, (start + total) % bar, total, lay)
        if pickup and not plan.reach[total - pickup]:
            raise MusicError(f"a pickup of {pickup / TICKS_PER_QUARTER:g} quarter notes cannot "
                             "be filled with the model's durations", field="pickup")
        seed = opts.seed_or_new()
        begin = Start(BOS, BOS, start, start, total)
        labels = self.choices.ids(meter, mode, style, tune_type)
        pitch_bias = self._pitch_bias(opts.low, opts.high, shift)
        # at most _MAX_ROWS rows at a time; later batches get seeds derived from the seed
        per_batch = max(1, _MAX_ROWS // opts.best_of)
        rows = []
        for i, first in enumerate(range(0, count, per_batch)):
            n = min(per_batch, count - first)
            batch_seed = seed if i == 0 else int(
                np.random.SeedSequence([seed, i]).generate_state(1)[0])
            rows += self._sample(begin, plan, meter, labels, pitch_bias, opts, n * opts.best_of,
                                 batch_seed, lay)
        out = []
        name = (req.title or "").strip()[:MAX_TITLE] or tune_title(tune_type, key, mode)
        for i, (durs, pits, surprisal, end_bits) in enumerate(_best(rows, count, opts.best_of)):
            notes = self._notes(durs, pits, shift)
            title = name + (f" no. {i + 1}" if count > 1 else "")
            mel = Melody(notes=notes, meter=meter, tonic=tonic, mode=mode, pickup=pickup,
                         tempo=float(req.tempo), title=title, style=style, form=form,
                         tune_type=tune_type, tonic_name=key)
            out.append(Composition(mel, surprisal, _per_note(surprisal, end_bits), seed,
                                   opts.temperature))
        return out

    def continue_melody(self, melody: Melody, bars: int = 8, keep_bars: int | None = None,
                        sampling: SamplingOptions | None = None, style: str | None = None,
                        form: str | None = None, tune_type: str | None = None) -> Composition:
        """The fragment (its first `keep_bars` bars, if given) unchanged, then new bars in its
        key and meter up to the end of the form (see formplan.TypeForms.continue_form): the
        rest of `form` or of the type's usual form when the fragment is written in parts, else
        `bars` more bars after completing a bar the fragment leaves open. Both networks read
        the whole fragment in one pass before sampling."""
        opts = sampling or SamplingOptions()
        opts.validate()
        b0, b1 = LIMITS["bars"]
        if not isinstance(bars, int) or not b0 <= bars <= b1:
            raise MusicError(f"bars must be in {b0}..{b1}, got {bars}", field="bars")
        if keep_bars is not None and (not isinstance(keep_bars, int) or keep_bars < 1):
            raise MusicError(f"keep_bars must be a positive number of bars, got {keep_bars}",
                             field="keep_bars")
        if keep_bars is not None and keep_bars > melody.complete_bars():
            raise MusicError(f"keep_bars {keep_bars} is more than the fragment's "
                             f"{melody.complete_bars()} bars", field="keep_bars")
        frag = melody if keep_bars is None else replace(
            melody, notes=melody.split_at_bar(keep_bars)[0])
        if not frag.notes:
            raise MusicError("the fragment has no notes")
        enc, meter, mode, style, kind = self._fragment(frag, style, tune_type)
        opts = self.choices.sampling(opts, kind)
        bar, start = meter.bar_ticks, enc.start
        first = 1 if start else 0
        frag_ticks = tune_ticks(enc, self.vocab)
        frag_bars = bars_after_pickup(start, frag_ticks, bar)
        fitted = frag.form if frag.form is not None and frag.form.written_bars == frag_bars else None
        target = self.forms.continue_form(fitted, frag_bars, kind, form, bars)
        total = (first + target.written_bars) * bar - start
        lay = self._layout(target, meter, start, total)
        if total <= frag_ticks:
            raise MusicError("the fragment already fills the form; give a longer form",
                             field="form")
        shift, pitch_bias = self._fragment_pitches(frag, enc, opts)
        labels = self.choices.ids(meter, mode, style, kind)
        n = len(enc.durations)
        frag_rhythm, frag_pitch, state, s = self._read(enc, target, total, labels, n)
        remaining = total - frag_ticks
        plan = self._plan(meter, (start + total) % bar, remaining, lay)
        seed = opts.seed_or_new()
        begin = Start(int(s["dur_in"][n]), int(s["pitch_in"][n]), int(s["pos_in"][n]),
                      enc.end_position, remaining, state)
        tracker = self._tracker(lay, enc)
        rows = self._sample(begin, plan, meter, labels, pitch_bias, opts, opts.best_of, seed, lay,
                            tracker)
        durs, pits, surprisal, end_bits = _best(rows, 1, opts.best_of)[0]
        new = self._notes(durs, pits, shift)
        frag_s = [(float(a), float(b)) for a, b in zip(frag_rhythm, frag_pitch)]
        mel = replace(frag, notes=list(frag.notes) + new, form=target, tune_type=kind)
        return Composition(mel, frag_s + surprisal, _per_note(frag_s + surprisal, end_bits), seed,
                           opts.temperature,
                           fragment_notes=len(frag.notes))

    def infill(self, melody: Melody, bars: list[tuple[int, int]],
               sampling: SamplingOptions | None = None, count: int = 1,
               candidates: int | None = None) -> list[Composition]:
        """`count` versions of the tune with the bar ranges `bars` (first, last) drawn anew
        to fit the notes on both sides, every other note kept (see infill.infill)."""
        from .infill import DEFAULT_CANDIDATES, infill

        return infill(self, melody, bars, sampling, count, candidates or DEFAULT_CANDIDATES)

    def score(self, melody: Melody, style: str | None = None) -> ScoreReport:
        """Per-note rhythm and pitch surprisal of a tune, from one teacher-forced pass, under
        `style`, else the style the file names, else the style under which the tune is most
        likely (the report says which); see scoring.score."""
        from .scoring import score

        return score(self, melody, style)

    def _steps(self, enc, form: Form, total: int) -> dict[str, np.ndarray]:
        """Model inputs and targets of an encoded tune (see encoding.streams), with its form
        inputs in `form` over `total` ticks."""
        s = streams(enc.durations, enc.pitches, enc.positions, enc.end_position)
        n = len(enc.durations)
        s.update({k: v[:n + 1] for k, v in form_streams(enc, self.vocab, form, total).items()})
        return s

    def _read(self, enc, form: Form, total: int, labels: tuple[int, ...], steps: int,
              state=None, first: int = 0
              ) -> tuple[np.ndarray, np.ndarray, object, dict[str, np.ndarray]]:
        """Both networks read the first `steps` steps of a tune (n + 1 for all of it, the last
        predicting END) in one teacher-forced pass, or with `state` (a one-row batch that has
        read the first `first` steps) the steps after those. Returns the rhythm bits of each
        step read, the pitch bits of each note among them, the state after them, and the
        steps themselves."""
        s = self._steps(enc, form, total)
        dur_logits, pitch_logits, state = self.net.read(s, labels, steps, state, first)
        notes = min(steps, len(enc.durations))
        rhythm = bits(dur_logits, s["dur_out"][first:steps])
        pitch = bits(pitch_logits[:max(0, notes - first)], s["pitch_out"][first:notes])
        return rhythm, pitch, state, s

    def _written_form(self, enc, total: int, meter: Meter) -> Form:
        """A whole tune's form: its own, where it fits the tune's bars, else one part."""
        form = tune_form(enc, self.vocab, total)
        if form.written_bars != bars_after_pickup(enc.start, total, meter.bar_ticks):
            form = tune_form(replace(enc, form=None), self.vocab, total)
        return form

    def _fragment(self, frag: Melody, style: str | None, tune_type: str | None) -> tuple:
        """A user's tune encoded for the model: (enc, meter, mode, style, type), the labels
        resolved from what was asked, else the tune's own, else the type's usual style."""
        meter = self.choices.meter(str(frag.meter))
        mode = self.choices.fragment_mode(frag.mode)
        kind = self.choices.tune_type(tune_type, frag.tune_type, meter)
        style = self.choices.style(style or (frag.style if frag.style in self.vocab.styles else None)
                                   or self.choices.type_style(kind))
        enc = encode(replace(frag, mode=mode, style=style, tune_type=kind), self.vocab, snap=True)
        return enc, meter, mode, style, kind

    def _fragment_pitches(self, frag: Melody, enc, opts: SamplingOptions
                          ) -> tuple[int, np.ndarray]:
        """The shift from the model's pitches to the user's tune (model pitch + shift = output
        pitch), and the pitch mask: the asked range, widened to the tune's own notes."""
        octave = _octave_shift([n.pitch for n in frag.to_tonic(0).notes], enc, self.vocab)
        shift = -nearest_shift(frag.tonic, 0) - octave
        sounding = [n.pitch for n in frag.notes if n.pitch is not None]
        return shift, self._pitch_bias(min([opts.low] + sounding), max([opts.high] + sounding),
                                       shift)

    def _tracker(self, lay: Layout, enc, notes: int | None = None) -> FormTracker | None:
        """A one-row form tracker that has read the notes of `enc` (a fragment to continue), or
        its first `notes` notes."""
        if not form_keys(self.cfg):
            return None
        tracker = FormTracker(lay, 1, reads_closes(self.cfg))
        t = 0
        for d, p in zip(enc.durations[:notes].tolist(), enc.pitches[:notes].tolist()):
            onset = np.array([t])
            tracker.features(onset)
            tracker.add(onset, np.array([d]), np.array([self._ticks[d]]), np.array([p]))
            t += int(self._ticks[d])
        return tracker

    def _notes(self, durs: list[int], pits: list[int], shift: int) -> list[Note]:
        """Tokens -> notes, pitches moved by `shift` semitones."""
        v = self.vocab
        pitch = [None] * N_SPECIAL + [v.pitch_low + i + shift
                                      for i in range(v.n_pitches - N_SPECIAL)]
        ticks = self._ticks.tolist()
        return [Note(pitch[p], ticks[d]) for d, p in zip(durs, pits)]

    # --- the sampling loop ------------------------------------------------------------------
    def _sample(self, begin: Start, plan: RhythmPlan, meter: Meter, labels: tuple[int, ...],
                pitch_bias: np.ndarray, opts: SamplingOptions, rows: int, seed: int, lay: Layout,
                tracker: FormTracker | None = None) -> list:
        """Sample `rows` continuations of `begin` in one batch (see generate.sample); `tracker`
        holds the form inputs of the notes before `begin` (None: there are none)."""
        lab = np.tile(np.array(labels, np.int64), (rows, 1))
        if not form_keys(self.cfg):
            tracker = None
        elif tracker is None:
            tracker = FormTracker(lay, rows, reads_closes(self.cfg))
        else:
            tracker = tracker.select(np.zeros(rows, np.int64))
        net = (self.net.batch(rows, lab) if begin.state is None
               else begin.state.select(np.zeros(rows, np.int64)))
        return sample(net, begin, plan, meter.bar_ticks, self._ticks, pitch_bias,
                      opts.temperature, opts.top_p, seed, tracker)


# --- helpers ---------------------------------------------------------------------------------
def _per_note(surprisal: list[tuple[float, float]], end_bits: float) -> float:
    """Bits per event: all notes' rhythm and pitch bits plus END's, over notes + 1."""
    return (sum(r + p for r, p in surprisal) + end_bits) / (len(surprisal) + 1)


def _best(rows: list, count: int, best_of: int) -> list:
    """The row with the fewest bits per note in each group of `best_of` consecutive rows."""
    out = []
    for g in range(count):
        group = rows[g * best_of:(g + 1) * best_of]
        out.append(min(group, key=lambda r: _per_note(r[2], r[3])))
    return out


def _octave_shift(at_c: list[int | None], enc, vocab: Vocab) -> int:
    """How many semitones encode() moved the fragment by octaves to fit the model's range."""
    moved = Counter(vocab.pitch_value(int(t)) - p for p, t in zip(at_c, enc.pitches)
                    if p is not None and int(t) != REST)
    return moved.most_common(1)[0][0] if moved else 0
