"""Form: reading parts, repeats, endings, phrases and types; the form inputs; writing repeats."""

from dataclasses import replace

import numpy as np
import pytest

from composer.encoding import Vocab, decode, encode
from composer.tunetype import check_type, normalize_type
from composer.form import Form, Part, TuneShape, form_stats, played
from composer.formplan import TypeForms, parse_form, with_endings
from composer.formats import read_tunes, render, save, to_abc
from composer.formfeatures import FORM_KEYS, FormTracker, Layout, form_streams, tune_form
from composer.music import Melody, Meter, MusicError, Note
from composer.structure import measure

SLIP_JIG = b"""X: 1126
T: Roudledum
R:slip jig
M:9/8
L:1/8
K:D
Ddd dAG FGE | Ddd dcB cde | def gec d2B |1 ABc dAG FGF:|2 BAF dAF EFA||
|:BEB BAG F2F | EBB BAF ABc | BEE BAG F2F |1 DED FDF ABc:|2 DED BAF EFA||
"""

REEL_WITH_PICKUP = b"""X: 2
T: Pickup reel
R:Reel
M:4/4
L:1/8
K:G
DE|:GABc dBAG|FGAB cAFA|GABc dBAG|FAdc BGG2:|
|:gfga gfed|edef gedB|gfga gfed|edcA BGG2:|
"""

ESSEN = b"""X:4
T: Herr und Schildknecht
R: Ballade, Tod, Unfall, Herr und Knecht
M: 2/4
L: 1/16
K: G
D2 | G4d3c | B6c2 | B4A4 | G4z2
G2 | B2B2d2B2 | A2c2B2
G2 | B2B2d2B2 | A2c2B2
D2 | G4d3c | B6c2 | B4A4 | G4z2
"""


def one(data: bytes, name: str = "t.abc"):
    tunes = read_tunes(name, data)
    assert tunes[0].melody is not None, tunes[0].error
    return tunes[0]


# --- types and form specs ------------------------------------------------------------------
@pytest.mark.parametrize("field,meter,collection,expected", [
    ("Double Jig", "6/8", "", "jig"), ("slipjig", "9/8", "", "slip jig"), ("Reel", "4/4", "", "reel"),
    ("Clog", "2/4", "", "hornpipe"), ("Highland Fling", "4/4", "", "strathspey"),
    ("Liebes - Lied", "3/4", "essenFolksong", "song"), ("Ballade, Tod", "6/8", "essenFolksong", "song"),
    ("", "6/8", "", "jig"), ("", "9/8", "miscFolk", "slip jig"), ("", "4/4", "oneills1850", "air"),
    ("", "4/4", "miscFolk", "other"), ("???", "3/4", "", "other")])
def test_tune_types_are_normalised(field, meter, collection, expected):
    assert normalize_type(field, meter, collection) == expected


def test_type_names_the_user_types_are_checked():
    assert check_type("Slip-Jig") == "slip jig"
    with pytest.raises(MusicError, match="unknown tune type 'jog'; valid types: reel"):
        check_type("jog")


def test_form_specs():
    aabb = parse_form("AABB", 8)
    assert [(p.bars, p.repeat, p.letter) for p in aabb.parts] == [(8, True, "A"), (8, True, "B")]
    assert (aabb.written_bars, aabb.played_bars, aabb.letters()) == (16, 32, "AABB")
    abac = parse_form("ABAC", 4)
    assert [p.source for p in abac.parts] == [None, None, 0, None] and not abac.has_repeats
    assert [p.bars for p in parse_form("A8B4", 2).parts] == [8, 4]
    assert parse_form("AABA", 8).letters() == "AABA"
    for bad in ("A0B", "XYZ!", "", "A65", "A8A4"):
        with pytest.raises(MusicError):
            parse_form(bad, 8)


def test_endings_layout_and_played_order():
    form = with_endings(parse_form("AABB", 4))
    assert form.parts[0].ending == form.parts[0].second == 1 and form.written_bars == 10
    assert form.played() == [0, 1, 2, 3, 0, 1, 2, 4, 5, 6, 7, 8, 5, 6, 7, 9]
    bars = form.layout()
    assert [b.ending for b in bars[:5]] == [0, 0, 0, 1, 2]
    assert bars[4].bar == bars[3].bar == 3  # a second ending replaces the first's bar
    assert all(a.phrase <= b.phrase for a, b in zip(bars, bars[1:]))


# --- reading the form of a written tune -------------------------------------------------------
def test_abc_endings_make_repeated_parts():
    t = one(SLIP_JIG)
    m = t.melody
    assert m.tune_type == "slip jig" or normalize_type(m.tune_type, "9/8") == "slip jig"
    assert [(p.bars, p.repeat, p.ending, p.second) for p in m.form.parts] == [(4, True, 1, 1)] * 2
    assert m.form.letters() == "AABB" and not t.dropped


def test_abc_pickup_and_section_pickups_count_from_the_barline():
    m = one(REEL_WITH_PICKUP).melody
    assert m.pickup == 24
    assert [(p.bars, p.repeat) for p in m.form.parts] == [(4, True), (4, True)]


def test_unusable_markers_are_counted():
    abc = REEL_WITH_PICKUP.replace(b"BGG2:|\n|:g", b"BGG2|\n|:g")
    t = one(abc)
    assert t.dropped == ["repeat start without an end"]


def test_essen_lines_become_phrases():
    from composer.form import apply_phrase_lines

    t = one(ESSEN)
    assert t.lines  # where each line starts, in ticks
    form, ok = apply_phrase_lines(t.melody.form, t.lines, t.melody.meter.bar_ticks,
                                  t.melody.start_position)
    assert ok and form.parts[0].phrases == (4, 2, 2, 4)


def test_ingest_keeps_forms_types_and_counts_dropped_markers(tmp_path):
    from composer.corpus import ingest
    from composer.dataset import Dataset

    bad = (REEL_WITH_PICKUP.replace(b"BGG2:|\n|:g", b"BGG2|\n|:g").replace(b"X: 2", b"X: 3")
           .replace(b"FGAB", b"FGAc"))  # another tune, not a duplicate
    (tmp_path / "tunes.abc").write_bytes(SLIP_JIG + b"\n" + REEL_WITH_PICKUP + b"\n" + bad)
    summary = ingest([str(tmp_path / "tunes.abc")], tmp_path / "d.npz", workers=1,
                     cache_dir=tmp_path / "cache")
    assert summary["markers_dropped"] == {"repeat start without an end": 1}
    assert summary["types"] == {"reel": 2, "slip jig": 1}
    ds = Dataset.load(tmp_path / "d.npz")
    assert sorted(f.letters() for f in ds.forms) == ["AABB", "AABB", "ABB"]
    assert summary["forms"]["reel"]["form"] == "AABB"


# --- writing ---------------------------------------------------------------------------------
def test_abc_and_musicxml_keep_repeats_and_endings(tmp_path):
    m = one(SLIP_JIG).melody
    text = to_abc([m])
    assert "|:" in text and "[1" in text and "[2" in text and ":|" in text
    for suffix in (".abc", ".musicxml"):
        path = tmp_path / f"t{suffix}"
        save([m], path)
        back = read_tunes(path)[0].melody
        assert [(n.pitch, n.duration) for n in back.notes] == [(n.pitch, n.duration) for n in m.notes]
        assert back.form.parts == tuple(replace(p, letter=q.letter) for p, q in
                                        zip(m.form.parts, back.form.parts))


def test_midi_wav_json_are_as_played(tmp_path):
    m = one(SLIP_JIG).melody
    heard, sources = played(m)
    assert heard.total_ticks == m.form.played_bars * m.meter.bar_ticks
    assert len(heard.notes) > len(m.notes) and heard.form is None
    assert all(n.pitch == m.notes[i].pitch for n, i in zip(heard.notes, sources))
    back = read_tunes("t.mid", render(m, ".mid"))[0].melody
    assert back.complete_bars() == 16  # two parts of 4 bars, each played twice
    import json
    doc = json.loads(render(m, ".json"))
    assert doc["form"] == "AABB" and doc["written_notes"] == len(m.notes)
    assert len(doc["notes"]) == len(heard.notes)


SHORT_LAST_BAR_JIG = b"""X: 5
T: Lead-in jig
R:jig
M:6/8
L:1/8
K:D
A|:dfa afd|cea ecA|dfa afd|ceA d2:|
"""


def test_a_repeat_after_a_shortened_last_bar_plays_the_lead_in_again():
    """The jig's eighth-note pickup is taken from its last bar: played, the repeat goes back
    through the lead-in, so every played bar is a full bar."""
    m = one(SHORT_LAST_BAR_JIG).melody
    bar = m.meter.bar_ticks
    assert (m.pickup, m.total_ticks, m.form.played_bars) == (12, 4 * bar, 8)
    heard, sources = played(m)
    assert heard.total_ticks == 8 * bar
    lead_in = heard.onsets().index(4 * bar)  # where the second time through begins
    assert sources[lead_in] == 0 and heard.notes[lead_in].pitch == m.notes[0].pitch


def test_a_tune_whose_last_bar_is_full_repeats_without_the_lead_in():
    m = one(REEL_WITH_PICKUP).melody  # a quarter-note pickup, and full bars to the end
    heard, _ = played(m)
    assert heard.total_ticks == m.pickup + m.form.played_bars * m.meter.bar_ticks


def test_form_stats_give_each_type_its_usual_meter_form_pickup_and_style():
    aabb, a = parse_form("AABB", 8), Form.through(16)
    shapes = ([TuneShape("jig", "6/8", aabb, 12, "oneills")] * 5
              + [TuneShape("jig", "6/8", aabb, 0, "ryans")] * 2
              + [TuneShape("jig", "9/8", a, 24, "oneills")] * 4  # not the usual meter: pickup unread
              + [TuneShape("song", "2/4", a, 0, "essen")])
    stats = form_stats(shapes)
    assert list(stats) == ["jig", "song"]
    jig = stats["jig"]
    assert (jig["tunes"], jig["meter"], jig["form"], jig["part_bars"]) == (11, "6/8", "AABB", 8)
    assert (jig["pickup"], jig["style"], jig["with_repeats"]) == (12, "oneills", round(7 / 11, 3))
    assert (stats["song"]["pickup"], stats["song"]["style"]) == (0, "essen")


def test_a_type_composes_in_its_usual_phrase_length():
    """Songs written a 2-bar phrase per line (as Essen's are) compose in 2-bar phrases; other
    types, and through-composed tunes, in 4-bar ones."""
    lines = Form((Part(8, phrases=(2, 2, 2, 2)),))
    shapes = ([TuneShape("song", "2/4", lines, 0, "essen")] * 3
              + [TuneShape("song", "2/4", Form((Part(8, phrases=(4, 4)),)), 0, "essen")] * 2
              + [TuneShape("reel", "2/2", parse_form("AABB", 8), 24, "ryans")])
    stats = form_stats(shapes)
    assert (stats["song"]["phrase_bars"], stats["reel"]["phrase_bars"]) == (2, 4)
    forms = TypeForms(["song", "reel"], stats)
    song = forms.compose_form("song", None, None)
    assert [p.phrase_lengths() for p in song.parts] == [(2, 2, 2, 2)]
    assert [w.phrase_bar for w in song.layout()] == [0, 1] * 4
    assert forms.compose_form("song", "A6B4", None).parts[1].phrase_lengths() == (2, 2)
    assert forms.compose_form("song", "A5", None).parts[0].phrase_lengths() == (2, 2, 1)
    assert forms.compose_form("song", None, 8).parts[0].phrase_lengths() == (4, 4)
    assert forms.compose_form("reel", None, None).parts[0].phrase_lengths() == (4, 4)
    # the parts added to a fragment: after one without parts, and after one with repeat signs
    # (which keeps its own phrases)
    assert forms.continue_form(None, 4, "song", "AB", 0).parts[1].phrase_lengths() == (2, 2, 2, 2)
    fragment = Form((Part(8, True, phrases=(4, 4)),))
    for spec in ("AAB", None):
        grown = forms.continue_form(fragment, 8, "song", spec, 0)
        assert [p.phrase_lengths() for p in grown.parts] == [(4, 4), (2, 2, 2, 2)]


def test_the_usual_pickup_is_that_of_the_usual_form_in_the_usual_meter():
    aabb, ab = parse_form("AABB", 8), parse_form("AB", 8)
    shapes = ([TuneShape("reel", "2/2", aabb, 24, "ryans")] * 3  # the form --type composes
              + [TuneShape("reel", "2/2", aabb, 0, "ryans")] * 2
              + [TuneShape("reel", "2/2", ab, 0, "oneills")] * 4)  # no repeats, not the usual form
    reel = form_stats(shapes)["reel"]
    assert (reel["form"], reel["meter"], reel["pickup"]) == ("AABB", "2/2", 24)
    # where no tune of the usual meter has the usual form, the pickup is the meter's usual one
    shapes = [TuneShape("air", "4/4", ab, 12, "aird")] * 2 + [TuneShape("air", "3/4", aabb, 0, "aird")]
    air = form_stats(shapes)["air"]
    assert (air["meter"], air["form"], air["pickup"]) == ("4/4", "AABB", 12)


# --- the form inputs -------------------------------------------------------------------------
def _replay(enc, vocab, form: Form, total: int, one_row: bool = False) -> np.ndarray:
    """The form inputs as the sampler computes them, note by note (one_row: on Python ints,
    as the one-tune loop does)."""
    bar = Meter.parse(enc.meter).bar_ticks
    ticks = np.array([0, 0, 0] + vocab.durations)[enc.durations.astype(int)]
    onsets = np.concatenate([[0], np.cumsum(ticks)])
    tracker = FormTracker(Layout.of(form, bar, enc.start, total), 1)
    rows = []
    for j in range(len(ticks) + 1):
        t = int(onsets[j])
        rows.append((tracker.features_one(t) if one_row else tracker.features(np.array([t])))[0])
        if j == len(ticks):
            break
        d, p = int(enc.durations[j]), int(enc.pitches[j])
        if one_row:
            tracker.add_one(t, d, int(ticks[j]), p)
        else:
            tracker.add(np.array([t]), np.array([d]), ticks[j:j + 1], np.array([p]))
    return np.array(rows)


@pytest.mark.parametrize("one_row", [False, True])
@pytest.mark.parametrize("data", [SLIP_JIG, REEL_WITH_PICKUP, ESSEN, SHORT_LAST_BAR_JIG])
def test_tracker_equals_whole_tune_features(data, one_row):
    m = one(data).melody
    vocab = Vocab(durations=sorted({n.duration for n in m.notes}))
    enc = encode(m, vocab)
    total = m.total_ticks
    whole = form_streams(enc, vocab)
    assert np.array_equal(_replay(enc, vocab, tune_form(enc, vocab), total, one_row),
                          np.stack([whole[k] for k in FORM_KEYS], 1))


def test_look_backs_follow_a_repeated_phrase():
    bar = [Note(60, 24), Note(62, 24), Note(64, 24), Note(65, 24)]
    other = [Note(67, 48), Note(65, 48)]
    notes = bar * 3 + other + bar * 3 + other  # phrase 2 repeats phrase 1
    m = Melody(notes, Meter(4, 4), form=Form.through(8))
    vocab = Vocab(durations=[24, 48])
    f = form_streams(encode(m, vocab), vocab)
    second = slice(14, 26)  # the notes of phrase 2
    assert (f["back_phrase_match"][second] == 2).all()
    assert (f["back_phrase_match"][:14] == 0).all()  # nothing one phrase before phrase 1
    assert f["phrase_bar"][0] == 0 and f["tune_left"][0] == 7 and f["part_left"][-1] == 0
    # the tune's closing bar (its last two notes and the END) does not echo phrase 1's close
    assert (f["back_phrase_match"][26:] == 0).all() and (f["back_phrase_pitch"][26:] == 0).all()


@pytest.mark.parametrize("one_row", [False, True])
def test_look_back_match_says_a_varied_phrase_came_back(one_row):
    bar = [Note(60, 24), Note(62, 24), Note(64, 24), Note(65, 24)]
    other = [Note(67, 48), Note(65, 48)]
    varied = [bar[0], Note(71, 24)] + bar[2:]  # phrase 2 leaves phrase 1 at its second note
    notes = bar * 3 + other + varied + bar * 2 + other
    m = Melody(notes, Meter(4, 4), form=Form.through(8))
    vocab = Vocab(durations=[24, 48])
    enc = encode(m, vocab)
    f = form_streams(enc, vocab)
    match = f["back_phrase_match"]
    assert list(match[14:18]) == [2, 2, 1, 3]  # matched, matched, after the miss, back again
    assert (match[18:26] == 3).all()
    tracked = _replay(enc, vocab, tune_form(enc, vocab), m.total_ticks, one_row)
    assert np.array_equal(tracked[:, FORM_KEYS.index("back_phrase_match")], match)


def test_closing_bars_look_back_less():
    """A part's last bar has no phrase look-back (the phrase before closes more weakly); the
    tune's last bar has no look-back at all (an earlier part closed only a part)."""
    bar = [Note(60, 24), Note(62, 24), Note(64, 24), Note(65, 24)]
    m = Melody(bar * 16, Meter(4, 4), form=parse_form("AB", 8))
    vocab = Vocab(durations=[24])
    f = form_streams(encode(m, vocab), vocab)
    bar_of = np.arange(len(f["back_phrase_match"])) // 4  # 0-based written bar of each step
    part_closes = np.isin(bar_of, [7, 15, 16])  # each part's last bar, and the END step
    assert (f["back_phrase_match"][(bar_of >= 4) & ~part_closes] == 2).all()
    assert (f["back_phrase_match"][part_closes] == 0).all()
    assert (f["back_part_match"][(bar_of >= 8) & (bar_of < 15)] == 2).all()  # B reads A
    assert (f["back_part_match"][bar_of >= 15] == 0).all()
    assert (f["back_part_pitch"][bar_of >= 15] == 0).all()


# --- structure measures ----------------------------------------------------------------------
def test_structure_measures_of_a_tune_built_to_repeat():
    bar = [Note(62, 24), Note(66, 24), Note(69, 24), Note(66, 24)]
    turn = [Note(64, 48), Note(62, 48)]
    notes = bar * 3 + turn + bar * 3 + turn
    m = Melody(notes, Meter(4, 4), tonic=2, form=Form((Part(8, True),)))
    r = measure(m)
    assert r["tonic_ending"] == 1.0 and r["repeat_signs"] == 1.0 and r["cadence"] == 1.0
    assert r["bar_repeat"] == pytest.approx(6 / 8)  # all but the first bar and the first turn
    assert r["phrase_sim"] == 1.0 and r["window_recur"] > 0.5
    assert r["closing_echo"] == 1.0  # the second phrase copies the first up to its last note
    closed = replace(m, notes=notes[:-1] + [Note(74, 48)])  # the close an octave up: still
    assert measure(closed)["closing_echo"] == 1.0 and measure(closed)["tonic_ending"] == 1.0
    varied = replace(m, notes=notes[:19] + [Note(71, 24)] + notes[20:])  # bar 7 differs
    assert measure(varied)["closing_echo"] == 0.0
    assert np.isnan(measure(replace(m, notes=bar * 3 + turn))["closing_echo"])  # 4 bars only


# --- tunes that go back: D.C., D.S., Fine ----------------------------------------------------
DA_CAPO_REEL = b"""X: 7
T: Music in the Glen
R:Reel
M:C|
L:1/8
K:A
A2cA FAED|CEAc BABc|d2fd ceAc|dBcA BAFE|
A2cA FAED|CEAc BABc|defg agaf|edcB A2"Fine"z2||
cAeA fAed|cAec dBGB|cAeA fAeg|aecA BAFE|
cAeA fAeg|aega bgeg|afge fdec|dBcA BA"D.C."FG||
"""


@pytest.mark.parametrize("fine,back", [(b'"Fine"', b'"D.C."'), (b"", b"!D.C.!"), (b"", b'"_D.S."'),
                                       (b'"(end)"', b""), (b"", b'"Da Capo"'), (b'"^Segno"', b""),
                                       (b'"S"', b""), (b"!segno!", b"")])
def test_a_tune_that_goes_back_is_read_as_da_capo(fine, back):
    m = one(DA_CAPO_REEL.replace(b'"Fine"', fine).replace(b'"D.C."', back)).melody
    assert m.form.da_capo and m.form.letters() == "AB"
    assert Form.from_dict(m.form.to_dict()) == m.form


def test_chord_symbols_and_header_words_do_not_make_a_da_capo():
    abc = (DA_CAPO_REEL.replace(b'"Fine"', b'"D"').replace(b'"D.C."', b'"Dm"')
           .replace(b"T: Music in the Glen", b"T: The End of the Road\nN: D.C. at the end"))
    assert not one(abc).melody.form.da_capo
    assert "da_capo" not in one(abc).melody.form.to_dict()


def test_the_written_end_of_a_da_capo_tune_closes_a_part_not_the_tune():
    m = one(DA_CAPO_REEL).melody
    plain = replace(m, form=replace(m.form, da_capo=False))
    for mel, last in ((m, 2), (plain, 3)):
        lay = Layout.of(mel.form, mel.meter.bar_ticks, mel.start_position, mel.total_ticks)
        assert lay.closes[mel.total_ticks] == last
    assert Layout.of(m.form, m.meter.bar_ticks, 0, m.total_ticks).closes[8 * m.meter.bar_ticks] == 2


def test_musicxml_da_capo_is_read(tmp_path):
    from music21 import meter, note, repeat, stream

    part = stream.Part()
    for k in range(2):
        bar = stream.Measure(number=k + 1)
        if k == 0:
            bar.append(meter.TimeSignature("4/4"))
        bar.append([note.Note(p, quarterLength=1) for p in ("D4", "F#4", "A4", "D5")])
        part.append(bar)
    for goes_back in (False, True):
        if goes_back:
            part.getElementsByClass(stream.Measure)[-1].append(repeat.DaCapo())
        path = tmp_path / f"t{goes_back}.musicxml"
        stream.Score([part]).write("musicxml", fp=path)
        assert read_tunes(path)[0].melody.form.da_capo is goes_back


def test_ingest_counts_da_capo_tunes_and_structure_skips_their_last_note(tmp_path):
    from composer.corpus import ingest
    from composer.dataset import Dataset
    from composer.structure import summarize

    (tmp_path / "tunes.abc").write_bytes(DA_CAPO_REEL + b"\n" + REEL_WITH_PICKUP)
    summary = ingest([str(tmp_path / "tunes.abc")], tmp_path / "d.npz", workers=1,
                     cache_dir=tmp_path / "cache")
    assert summary["da_capo"] == 1
    ds = Dataset.load(tmp_path / "d.npz")
    assert sorted(f.da_capo for f in ds.forms) == [False, True]
    tunes = [decode(ds.tune(i), ds.vocab) for i in range(len(ds.forms))]
    ends = [measure(m)["tonic_ending"] for m in tunes]
    assert sum(np.isnan(ends)) == 1  # the D.C. reel ends at its Fine, not at its last note
    assert summarize(tunes)["tonic_ending"] == 1.0  # the pickup reel ends on G


# --- the key of a tune written with a bare signature ---------------------------------------
E_DORIAN = b"""X:7
T:Dorian reel
R:reel
M:2/2
L:1/8
K:D
|:E2BE dEBE|E2BE AFDF|E2BE dEBE|1 BABc dBAF:|2 BABc dBE2||
|:e2ef gfed|Bdef gfed|e2ef gfed|BABc dBE2:|
"""


def test_a_tune_whose_parts_all_close_on_another_note_is_in_that_notes_mode():
    m = one(E_DORIAN).melody
    assert m.key_name() == "E dorian"  # K:D, both parts close on E (the first ending leads back)
    assert [p % 12 for p in m.part_ends()] == [6, 4, 4]  # the first ending leads back on F#
    assert "K:Edor" in to_abc([m])
    mixolydian = E_DORIAN.replace(b"K:D", b"K:G").replace(b"dBE2", b"dBD2")
    assert one(mixolydian).melody.key_name() == "D mixolydian"  # C naturals, closes on D
    no_sixth = E_DORIAN.replace(b"BABc", b"BABd")  # no C sounds: E dorian or E minor
    assert one(no_sixth).melody.key_name() == "E dorian"  # the mode K:D writes on E
    assert one(no_sixth.replace(b"K:D", b"K:G")).melody.key_name() == "E minor"


def test_a_tune_written_by_composer_reads_back_in_its_key_whatever_it_closes_on():
    as_read = one(E_DORIAN.replace(b"K:D", b"K:Dmaj")).melody  # D major, closing on E
    abc = to_abc([as_read])
    assert "\nK:Dmaj\n" in abc and one(abc.encode()).melody.key_name() == "D major"


def test_the_last_part_s_close_is_the_final_whatever_the_earlier_parts_close_on():
    a_on_d = E_DORIAN.replace(b"|2 BABc dBE2||", b"|2 BABc dBd2||")
    m = one(a_on_d).melody
    assert [p % 12 for p in m.part_ends()] == [6, 2, 4] and m.key_name() == "E dorian"


@pytest.mark.parametrize("change", [
    (b"K:D", b"K:Dmaj"),  # the mode is named: it stands
    (b"|BABc dBE2:|", b"|BABc dBd2:|"),  # the tune closes on the tonic (its A part on E)
    (b"dBE2:|", b'dB"D.C."E2:|'),  # the written end sends the player back: no close
])
def test_the_written_key_stands_unless_the_tune_closes_elsewhere(change):
    assert one(E_DORIAN.replace(*change)).melody.key_name() == "D major"


def test_a_one_part_tune_in_seven_notes_keeps_its_key_whatever_note_it_ends_on():
    m = one(ESSEN[:-len(b"G4z2\n")] + b"B4z2\n").melody
    assert m.last_pitch() % 12 == 11 and m.key_name() == "G major"
    on_the_fifth = one(ESSEN[:-len(b"G4z2\n")] + b"D4z2\n").melody
    assert on_the_fifth.key_name() == "G major"  # B and C sound often: seven notes


# A song from Essen's Chinese collection as it writes them: the key field gives the signature's
# major key (the pentatonic scale's gong, C), and the song keeps to C D E G A, closing on D.
CHINESE = b"""X:1
T: Renmin gongshe shizai hao
R: Xiaodiao
M: 2/4
L: 1/16
K: C
d4A2c2 | d4d4 | A3cd2g2 | c2A2G4
A3cd2g2 | d2c4A2 | c3AG2E2 | D8
"""


@pytest.mark.parametrize("close, key", [
    (b"D8", "D dorian"),  # shang: the mode the signature writes on D
    (b"G8", "G mixolydian"),  # zhi
    (b"A8", "A minor"),  # yu
    (b"E8", "E minor"),  # jue: E phrygian as written, but no F sounds, and minor is a folk mode
    (b"C8", "C major"),  # gong: the key as written
])
def test_a_one_part_pentatonic_tune_is_in_the_mode_its_final_names(close, key):
    m = one(CHINESE.replace(b"| D8", b"| " + close)).melody
    assert m.key_name() == key and m.ends_on_tonic()


def test_a_pentatonic_tune_with_more_than_a_trace_of_the_fourth_or_seventh_keeps_its_key():
    sevens = CHINESE.replace(b"| c2A2G4", b"| B2A2G4").replace(b"| d2c4A2", b"| d2B4A2")
    assert one(sevens).melody.key_name() == "C major"  # B is a tenth of the note time (6 in 64)
    phrygian = CHINESE.replace(b"| c3AG2E2 | D8", b"| c3AG2F2 | E8")  # F sounds: E phrygian
    assert one(phrygian).melody.key_name() == "C major"  # a close away from the tonic
    sharps = CHINESE.replace(b"| c2A2G4", b"| c2A2^F4").replace(b"| d2c4A2", b"| d2^F4A2")
    assert one(sharps).melody.key_name() == "C major"  # F# is outside C's pentatonic scale


def test_a_short_pentatonic_piece_keeps_its_key_for_its_last_note_is_no_final():
    two_bars = b"X:1\nT:Fragment\nM:4/4\nL:1/8\nK:C\nCDEG AGED | CDEG A2D2 |\n"
    assert one(two_bars).melody.key_name() == "C major"
    five_bars = CHINESE.replace(b"\nA3cd2g2 | d2c4A2 | c3AG2E2 | D8", b" | D8")
    assert one(five_bars).melody.key_name() == "C major"


def test_a_bare_signature_gives_the_mode_its_scale_writes_whatever_major_or_minor_it_reads_as():
    # no E sounds, so the reader takes `K:C` for C minor; the signature is still C major's
    no_third = b"X:1\nT:t\nM:4/4\nL:1/8\nK:C\n" + b"C2DC G2C2 | DCD2 G2D2 |\n" * 4
    assert one(no_third).melody.key_name() == "D dorian"
    trace = CHINESE.replace(b"| c2A2G4", b"| c2A2GF3")  # three sixteenths of F in 64: under 5%
    assert one(trace).melody.key_name() == "D dorian"


def test_a_close_that_would_make_the_tune_lydian_or_phrygian_leaves_the_key():
    on_the_third = E_DORIAN.replace(b"dBE2", b"dBF2")  # every part closes on F#: F# phrygian
    assert one(on_the_third).melody.key_name() == "D major"


def test_ingest_counts_and_marks_the_keys_it_read_from_the_final(tmp_path):
    from composer.corpus import format_summary, ingest
    from composer.dataset import Dataset

    as_written = E_DORIAN.replace(b"X:7", b"X:8").replace(b"K:D", b"K:Dmaj")  # mode named
    (tmp_path / "tunes.abc").write_bytes(E_DORIAN + b"\n" + as_written)
    summary = ingest([str(tmp_path / "tunes.abc")], tmp_path / "d.npz", workers=1,
                     cache_dir=tmp_path / "cache")
    assert summary["tunes_kept"] == 2 and summary["keys_from_final"] == 1
    assert "1 keys read from the tune's final" in format_summary(summary)
    ds = Dataset.load(tmp_path / "d.npz")
    marked = {t["key"]: bool(t.get("key_from_final")) for t in ds.tunes}
    assert marked == {"E dorian": True, "D major": False}
