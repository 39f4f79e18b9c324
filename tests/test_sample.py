"""The sampler: bar and range constraints, determinism, best-of, continuation, scoring, errors."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composer.encoding import END, N_SPECIAL, Vocab
from composer.music import Melody, Meter, MusicError, Note, nearest_shift
from composer.generate import draw, draw_one, rhythm_plan
from composer.sample import Composer, ComposeRequest, SamplingOptions

from conftest import make_tune


@pytest.fixture(scope="module")
def composer(tiny_model_dir) -> Composer:
    return Composer.load(tiny_model_dir)


def _crossings_ok(m: Melody) -> bool:
    """No note crosses a barline unless it starts and ends on a beat."""
    bar, beat = m.meter.bar_ticks, m.meter.beat_ticks
    for pos, n in zip(m.positions(), m.notes):
        if pos + n.duration > bar and (pos % beat or (pos + n.duration) % beat):
            return False
    return True


# --- the rhythm plan -------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(durs=st.sets(st.sampled_from([3, 4, 6, 8, 9, 12, 16, 18, 24, 32, 36, 48, 72, 96]),
                    min_size=1, max_size=6),
       meter=st.sampled_from(["2/4", "3/4", "4/4", "6/8", "9/8", "3/8"]),
       end=st.integers(0, 95))
def test_rhythm_plan_never_dead_ends(durs, meter, end):
    m = Meter.parse(meter)
    end %= m.bar_ticks
    vocab = Vocab(durations=sorted(durs))
    plan = rhythm_plan(vocab, m, end, 4 * m.bar_ticks)
    ok = np.isfinite(plan.bias)
    assert ok[0].tolist() == [i == END for i in range(vocab.n_durations)]  # END exactly at the end
    assert not ok[1:, :N_SPECIAL].any()  # never END (or PAD/BOS) before it
    for r in range(1, len(plan.reach)):
        allowed = [vocab.durations[i - N_SPECIAL] for i in np.flatnonzero(ok[r])]
        assert plan.reach[r] == bool(allowed)
        for d in allowed:  # an allowed duration fits and leaves a fillable remainder
            assert d <= r and plan.reach[r - d]
            pos = (end - r) % m.bar_ticks
            assert pos + d <= m.bar_ticks or (pos % m.beat_ticks == 0
                                              and (pos + d) % m.beat_ticks == 0)


def test_rhythm_plan_periodic_tail_matches_full_computation():
    vocab = Vocab(durations=[6, 12, 18, 24, 36, 48, 72])
    m = Meter.parse("6/8")
    long = rhythm_plan(vocab, m, 0, 40 * m.bar_ticks)
    # recompute row by row without the shortcut: every row from the recurrence
    reach = np.zeros(len(long.reach), bool)
    reach[0] = True
    for r in range(1, len(reach)):
        pos = (0 - r) % m.bar_ticks
        reach[r] = any(d <= r and reach[r - d]
                       and (pos + d <= 72 or (pos % 36 == 0 and (pos + d) % 36 == 0))
                       for d in vocab.durations)
    assert (long.reach == reach).all()


def test_draw_respects_mask_and_nucleus():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 6)).astype(np.float32)
    z[:, 0] += 3.0  # token 0 dominant
    bias = np.zeros(6, np.float32)
    bias[5] = -np.inf
    u = rng.random(4000)
    tok = draw(z, bias, 1.0, 1.0, u)
    assert 5 not in tok and set(tok) <= set(range(5))
    # with a tiny nucleus only the most likely token of each row survives
    assert (draw(z, bias, 1.0, 1e-6, u) == np.argmax(z + bias, axis=1)).all()
    one = [draw_one(z[i], bias, 1.0, 0.9, float(u[i]), np.empty(6, np.float32)) for i in range(200)]
    assert one == draw(z[:200], bias, 1.0, 0.9, u[:200]).tolist()
    # u = 0 never picks a masked token at the start of the row
    assert draw(np.zeros((1, 3), np.float32), np.array([-np.inf, 0, 0], np.float32), 1.0, 1.0,
                 np.zeros(1))[0] == 1


# --- compose ---------------------------------------------------------------------------------
@pytest.mark.parametrize("meter", ["3/4", "4/4", "6/8"])
@pytest.mark.parametrize("pickup", [0, 12])
def test_compose_constraints_hold(composer, meter, pickup):
    for seed in range(4):
        bars = [1, 2, 5, 8][seed]
        opts = SamplingOptions(seed=seed, low=60, high=79, temperature=1.5, top_p=1.0)
        req = ComposeRequest(bars=bars, meter=meter, key="Bb", mode="minor", pickup=pickup,
                             sampling=opts)
        comp = composer.compose(req)
        m = comp.melody
        bar = m.meter.bar_ticks
        assert str(m.meter) == meter and m.pickup == pickup
        assert m.total_ticks == bars * bar  # pickup + shortened last bar make one bar
        assert m.complete_bars() == bars
        assert (m.start_position + m.total_ticks) % bar == (bar - pickup) % bar
        assert _crossings_ok(m)
        assert all(60 <= n.pitch <= 79 for n in m.notes if n.pitch is not None)
        assert m.notes[-1].pitch is not None
        assert (m.tonic, m.mode) == (10, "minor")
        assert len(comp.surprisal) == len(m.notes)
        assert all(r >= 0 and p >= 0 for r, p in comp.surprisal)


def test_compose_is_transposed_to_the_key(composer):
    wide = dict(low=0, high=127)
    tunes = {k: composer.compose(ComposeRequest(bars=4, key=k,
                                                sampling=SamplingOptions(seed=7, **wide)))
             for k in ("C", "D", "F#", "A")}
    c = tunes["C"].melody
    for k, comp in tunes.items():
        shift = nearest_shift(0, comp.melody.tonic)
        assert [n.duration for n in comp.melody.notes] == [n.duration for n in c.notes]
        assert [None if n.pitch is None else n.pitch - shift for n in comp.melody.notes] == [
            n.pitch for n in c.notes]
    assert tunes["F#"].melody.tonic == 6 and tunes["A"].melody.tonic == 9


def test_same_seed_same_tune_other_seed_other_tune(composer):
    req = ComposeRequest(bars=8, meter="6/8", key="G", sampling=SamplingOptions(seed=123))
    a, b = composer.compose(req), composer.compose(req)
    assert a.melody == b.melody and a.surprisal == b.surprisal and a.seed == b.seed == 123
    c = composer.compose(replace(req, sampling=SamplingOptions(seed=124)))
    assert c.melody.notes != a.melody.notes
    drawn = composer.compose(replace(req, sampling=SamplingOptions(seed=None)))
    assert isinstance(drawn.seed, int) and drawn.seed >= 0


@pytest.mark.parametrize("temperature", [1e-300, 1e-70, 1e-6])
@pytest.mark.parametrize("count", [1, 3])
def test_a_tiny_temperature_samples_greedily_instead_of_failing(composer, temperature, count):
    req = ComposeRequest(bars=4, meter="6/8", sampling=SamplingOptions(seed=1, temperature=temperature))
    tunes = composer.compose_many(req, count)
    assert len(tunes) == count
    for t in tunes:
        assert t.melody.complete_bars() == 4 and np.isfinite(t.bits_per_note)
    # effectively greedy: every row, whatever its uniforms, takes the same most likely path
    assert len({tuple(t.melody.notes) for t in tunes}) == 1


def test_best_of_returns_the_likeliest_candidate(composer):
    base = ComposeRequest(bars=4, meter="4/4", sampling=SamplingOptions(seed=5))
    candidates = composer.compose_many(base, 6)  # the same batch of 6 rows and uniforms
    best = composer.compose(replace(base, sampling=SamplingOptions(seed=5, best_of=6)))
    assert best.bits_per_note == min(c.bits_per_note for c in candidates)
    assert best.melody.notes in [c.melody.notes for c in candidates]
    assert len({tuple(c.melody.notes) for c in candidates}) > 1


def test_compose_many_gives_count_tunes_that_all_hold(composer):
    tunes = composer.compose_many(ComposeRequest(bars=3, meter="3/4", pickup=24,
                                                 sampling=SamplingOptions(seed=1, best_of=2)), 5)
    assert len(tunes) == 5
    for c in tunes:
        assert c.melody.total_ticks == 3 * 72 and c.melody.complete_bars() == 3


def test_surprisal_matches_the_score_of_the_same_tune(composer):
    comp = composer.compose(ComposeRequest(bars=4, meter="6/8", key="C", mode="dorian", pickup=12,
                                           sampling=SamplingOptions(seed=3)))
    report = composer.score(comp.melody)
    assert len(report.notes) == len(comp.surprisal)
    for n, (r, p) in zip(report.notes, comp.surprisal):
        assert n.rhythm_bits == pytest.approx(r, abs=1e-3)
        assert n.pitch_bits == pytest.approx(p, abs=1e-3)
    assert report.bits_per_note == pytest.approx(comp.bits_per_note, abs=1e-3)


def test_model_step_path_keeps_the_constraints(composer, tiny_model_dir):
    slow = Composer.load(tiny_model_dir, engine="torch")  # the model's own steps
    comp = slow.compose(ComposeRequest(bars=3, meter="6/8", sampling=SamplingOptions(seed=2)))
    assert comp.melody.total_ticks == 3 * 72 and _crossings_ok(comp.melody)
    fast = composer.compose(ComposeRequest(bars=3, meter="6/8", sampling=SamplingOptions(seed=2)))
    assert [r for r, _ in comp.surprisal] == pytest.approx([r for r, _ in fast.surprisal], abs=1e-3)
    for c in slow.compose_many(ComposeRequest(bars=2, meter="3/4", pickup=24,
                                              sampling=SamplingOptions(seed=3, best_of=4)), 3):
        assert c.melody.total_ticks == 2 * 72 and c.melody.complete_bars() == 2


# --- continue --------------------------------------------------------------------------------
def _fragment(bars=4, pickup=True, tonic=2, seed=0) -> Melody:
    return make_tune(random.Random(seed), "6/8", "major", "jigs", bars=bars, tonic=tonic,
                     pickup=pickup)


def _check_continuation(comp, frag: Melody, new_bars: int) -> None:
    m = comp.melody
    n = len(frag.notes)
    assert comp.fragment_notes == n
    assert m.notes[:n] == frag.notes
    assert (m.meter, m.tonic, m.mode, m.tempo, m.pickup) == (
        frag.meter, frag.tonic, frag.mode, frag.tempo, frag.pickup)
    bar = m.meter.bar_ticks
    frag_end = (frag.start_position + frag.total_ticks) % bar
    assert m.total_ticks == frag.total_ticks + (bar - frag_end) % bar + new_bars * bar
    assert (m.start_position + m.total_ticks) % bar == 0  # ends on a barline
    assert len(comp.surprisal) == len(m.notes)
    assert m.notes[-1].pitch is not None


def test_continue_keeps_the_fragment_and_adds_bars(composer):
    frag = _fragment()
    comp = composer.continue_melody(frag, bars=3, sampling=SamplingOptions(seed=1))
    _check_continuation(comp, frag, 3)


def test_continue_completes_a_bar_left_open(composer):
    full = _fragment(pickup=False, tonic=7)
    frag = replace(full, notes=full.notes[:7])
    bar = frag.meter.bar_ticks
    assert (frag.start_position + frag.total_ticks) % bar != 0
    comp = composer.continue_melody(frag, bars=2, sampling=SamplingOptions(seed=4, best_of=3))
    _check_continuation(comp, frag, 2)


def test_continue_keep_bars_uses_the_first_bars(composer):
    frag = _fragment(bars=6)
    comp = composer.continue_melody(frag, bars=1, keep_bars=2, sampling=SamplingOptions(seed=2))
    cut = frag.pickup + 2 * frag.meter.bar_ticks
    kept = [n for n, t in zip(frag.notes, frag.onsets()) if t < cut]
    _check_continuation(comp, replace(frag, notes=kept), 1)


def test_continue_keeps_odd_rhythms_and_pitches_the_model_cannot_read(composer):
    # a quintuplet-ish run and notes far above the model's range: snapped and moved by octaves
    # for the model only; the output keeps the user's notes
    notes = [Note(62, 24), Note(64, 5), Note(66, 5), Note(67, 14), Note(110, 24), Note(108, 24)]
    frag = Melody(notes=notes, meter=Meter(4, 4), tonic=2, mode="major", tempo=96.0, title="odd")
    comp = composer.continue_melody(frag, bars=2, sampling=SamplingOptions(seed=0))
    _check_continuation(comp, frag, 2)


def test_continue_is_deterministic(composer):
    frag = _fragment(seed=3)
    a = composer.continue_melody(frag, bars=2, sampling=SamplingOptions(seed=9))
    b = composer.continue_melody(frag, bars=2, sampling=SamplingOptions(seed=9))
    assert a.melody == b.melody and a.surprisal == b.surprisal


# --- score -----------------------------------------------------------------------------------
def test_score_report_structure(composer):
    tune = _fragment(bars=4)
    report = composer.score(tune)
    d = report.to_dict()
    assert len(d["notes"]) == len(tune.notes)
    assert d["total_bits"] == pytest.approx(sum(n["rhythm_bits"] + n["pitch_bits"]
                                                for n in d["notes"]) + d["end_bits"], abs=1e-2)
    assert d["bits_per_note"] == pytest.approx(d["total_bits"] / (len(tune.notes) + 1), abs=1e-3)
    top = [n["bits"] for n in d["most_surprising"]]
    assert len(top) == 5 and top == sorted(top, reverse=True)
    assert top[0] == max(n["bits"] for n in d["notes"])
    # a 24-tick pickup in 6/8 starts 48 ticks into bar 0: beat 2 and a third
    assert d["notes"][0]["bar"] == 0
    assert d["notes"][0]["beat"] == pytest.approx(1 + 48 / 36, abs=1e-3)
    assert d["notes"][1]["bar"] == 1 and d["notes"][1]["beat"] == 1.0
    assert "most surprising" in report.to_text()


def test_a_tune_in_the_style_scores_lower_than_noise(composer):
    rng = random.Random(0)
    real, noise = [], []
    for i in range(6):
        tune = make_tune(rng, "6/8", "major", "jigs", bars=8, tonic=rng.randrange(12))
        real.append(composer.score(tune).bits_per_note)
        shuffled = [Note(rng.randrange(40, 90), n.duration) for n in tune.notes]
        noise.append(composer.score(replace(tune, notes=shuffled)).bits_per_note)
    assert np.mean(real) < np.mean(noise) - 0.5


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (dict(meter="5/4"), "this model knows the meters 3/4, 4/4, 6/8"),
    (dict(meter="waltz"), "this model knows the meters"),
    (dict(mode="blues"), "valid modes: dorian, major, minor"),
    (dict(mode="lydian"), "valid modes"),
    (dict(style="reels"), "valid styles: airs, jigs"),
    (dict(key="H"), "valid keys: C, C#"),
    (dict(bars=0), "bars must be in 1..256"),
    (dict(bars=257), "bars must be in 1..256"),
    (dict(pickup=96), "pickup"),
    (dict(sampling=SamplingOptions(temperature=0)), "temperature"),
    (dict(sampling=SamplingOptions(temperature=-1)), "temperature"),
    (dict(sampling=SamplingOptions(top_p=0)), "top_p"),
    (dict(sampling=SamplingOptions(best_of=0)), "best_of"),
    (dict(sampling=SamplingOptions(low=80, high=60)), "low pitch 80 is above high pitch 60"),
    (dict(sampling=SamplingOptions(low=0, high=20)), "leaves less than an octave of it"),
])
def test_bad_requests_raise_one_line_music_errors(composer, change, message):
    with pytest.raises(MusicError, match=message) as e:
        composer.compose(replace(ComposeRequest(), **change))
    assert "\n" not in str(e.value)


def test_options_list_what_the_model_knows(composer):
    o = composer.options()
    assert o["meters"] == ["3/4", "4/4", "6/8"] and "F#" in o["keys"]
    assert o["defaults"]["style"] in o["styles"] and o["limits"]["bars"] == {"min": 1, "max": 256}
    req = ComposeRequest(**{k: o["defaults"][k] for k in ("bars", "meter", "key", "mode", "style",
                                                         "tempo")})
    assert composer.compose(replace(req, bars=2)).melody.complete_bars() == 2


def test_empty_fragment_and_missing_model_are_clear_errors(composer, tmp_path):
    from composer.modelfiles import CheckpointError

    with pytest.raises(MusicError, match="no notes"):
        composer.continue_melody(Melody(notes=[]), bars=2)
    with pytest.raises(MusicError, match="no notes"):
        composer.score(Melody(notes=[]))
    with pytest.raises(CheckpointError, match="not found"):
        Composer.load(tmp_path / "nothing")


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("req", [
    dict(tune_type="reel", form="A2A2B2B2"), dict(tune_type="jig", form="ABAC", pickup=12),
    dict(tune_type="waltz"), dict(bars=5, meter="3/4")])
def test_sampled_surprisal_equals_score_with_form_inputs(tiny_model_dir, engine, req):
    """The form inputs fed note by note while sampling are the ones scoring computes for the
    finished tune: the model gives both the same bits."""
    c = Composer.load(tiny_model_dir, engine=engine)
    for best_of, count in ((1, 1), (3, 2)):
        comps = c.compose_many(ComposeRequest(**req, sampling=SamplingOptions(seed=4, best_of=best_of)),
                               count)
        for comp in comps:
            assert c.score(comp.melody).bits_per_note == pytest.approx(comp.bits_per_note, abs=1e-4)


@pytest.mark.parametrize("kind", ["jig", "reel", "waltz"])
def test_a_type_brings_its_usual_pickup_and_style(composer, kind):
    """Unset, the pickup and the style are the ones most of the type's training tunes have;
    the last bar is shortened by the pickup, so the form's bars stay exact."""
    usual = composer.forms.usual(kind)
    m = composer.compose(ComposeRequest(tune_type=kind, sampling=SamplingOptions(seed=2))).melody
    assert (m.pickup, m.style) == (usual["pickup"], usual["style"])
    assert m.complete_bars() == m.form.written_bars
    assert m.total_ticks == m.form.written_bars * m.meter.bar_ticks  # pickup + short last bar
    chosen = composer.compose(ComposeRequest(tune_type=kind, pickup=0, style="airs",
                                             sampling=SamplingOptions(seed=2))).melody
    assert (chosen.pickup, chosen.style) == (0, "airs")
    assert chosen.total_ticks == chosen.form.written_bars * chosen.meter.bar_ticks and chosen.notes
    meter = next(m for m in composer.vocab.meters if m != usual["meter"])
    other_meter = composer.compose(ComposeRequest(tune_type=kind, meter=meter, bars=4)).melody
    assert other_meter.pickup == 0  # a pickup is the type's only in its usual meter


@pytest.mark.parametrize("kind", ["jig", "reel", "waltz"])
def test_a_meter_brings_the_pickup_of_the_type_it_gives(composer, kind):
    """`--bars 16 --meter 6/8` is a jig: through-composed, it starts with a jig's lead-in."""
    usual = composer.forms.usual(kind)
    if composer.forms.type_for_meter(usual["meter"]) != kind:
        pytest.skip(f"{usual['meter']} gives another type")
    m = composer.compose(ComposeRequest(bars=4, meter=usual["meter"], sampling=SamplingOptions(seed=2))).melody
    assert (m.tune_type, m.pickup, m.form.letters()) == (kind, usual["pickup"], "A")
    assert m.complete_bars() == 4 and m.total_ticks == 4 * m.meter.bar_ticks


def test_the_tiny_corpus_types_differ_in_pickup_and_style(composer):
    """So that the test above can fail: the types do not all share one pickup and style."""
    usual = [composer.forms.usual(k) for k in ("jig", "reel", "waltz")]
    assert len({(u["pickup"], u["style"]) for u in usual}) > 1


def test_a_form_fixes_the_written_bars_and_no_note_crosses_a_part_end(composer):
    comp = composer.compose(ComposeRequest(tune_type="jig", form="AABBC2", pickup=0,
                                           sampling=SamplingOptions(seed=9)))
    m = comp.melody
    parts = [(p.bars, p.repeat) for p in m.form.parts]
    assert parts == [(4, True), (4, True), (2, False)]  # the tiny corpus's jig parts are 4 bars
    bar = m.meter.bar_ticks
    assert m.total_ticks == 10 * bar and _crossings_ok(m)
    ends = {4 * bar, 8 * bar}
    assert all(not (t < e < t + n.duration) for t, n in zip(m.onsets(), m.notes) for e in ends)
