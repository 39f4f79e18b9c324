"""Round trips through the token streams, and duration snapping that keeps bars exact."""

from hypothesis import given, settings
from hypothesis import strategies as st

from composer.encoding import Vocab, decode, encode, snap_durations, streams, END, BOS
from composer.music import Melody, Meter, Note, MODES

DURS = [3, 4, 6, 8, 9, 12, 16, 18, 24, 36, 48, 72, 96]
METERS = ["2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "3/8", "2/2"]


@st.composite
def melodies(draw):
    meter = Meter.parse(draw(st.sampled_from(METERS)))
    notes = draw(st.lists(st.builds(Note, st.one_of(st.none(), st.integers(48, 84)),
                                    st.sampled_from(DURS)), min_size=1, max_size=60))
    pickup = draw(st.integers(0, meter.bar_ticks - 1))
    return Melody(notes=notes, meter=meter, tonic=draw(st.integers(0, 11)),
                  mode=draw(st.sampled_from(MODES)), pickup=pickup, style="s")


VOCAB = Vocab(durations=DURS, meters=METERS, modes=list(MODES), styles=["s"])


@settings(max_examples=200, deadline=None)
@given(melodies())
def test_round_trip_gives_same_notes_bars_and_meter(mel):
    enc = encode(mel, VOCAB, snap=False)
    back = decode(enc, VOCAB)
    assert back.notes == mel.notes
    assert back.meter == mel.meter and back.pickup == mel.pickup
    assert back.mode == mel.mode and back.tonic == mel.tonic
    assert [len(b) for b in back.bars()] == [len(b) for b in mel.bars()]
    assert list(enc.positions) == mel.positions()


@st.composite
def bars_of_odd_rhythms(draw):
    """Whole 2/4 bars (48 ticks), each split into 1..6 arbitrary positive durations."""
    durs = []
    for _ in range(draw(st.integers(1, 8))):
        n = draw(st.integers(1, 6))
        cuts = sorted(draw(st.lists(st.integers(1, 47), min_size=n - 1, max_size=n - 1, unique=True)))
        edges = [0, *cuts, 48]
        durs += [b - a for a, b in zip(edges, edges[1:])]
    return durs


@settings(max_examples=300, deadline=None)
@given(bars_of_odd_rhythms())
def test_snapping_keeps_every_barline(durs):
    allowed = [3, 4, 6, 8, 12, 24, 48]
    out = snap_durations(durs, allowed, bar_ticks=48)
    assert all(d in allowed for d in out)
    assert sum(out) == sum(durs)
    onsets = {sum(out[:i]) for i in range(len(out) + 1)}
    assert set(range(0, sum(durs) + 1, 48)) <= onsets


def test_snap_quintuplet_in_a_bar_keeps_the_barline():
    # five notes in a quarter (4.8 ticks each, rounded), then a quarter: the barline stays at 48
    out = snap_durations([5, 5, 5, 5, 4, 24], [3, 4, 6, 8, 12, 24], bar_ticks=48)
    assert sum(out[:5]) == 24 and out[5] == 24


def test_streams_shift_by_one_and_end_with_END():
    mel = Melody([Note(60, 12), Note(62, 12), Note(None, 24)], Meter(2, 4), pickup=0)
    enc = encode(mel, VOCAB)
    s = streams(enc.durations, enc.pitches, enc.positions, enc.end_position)
    assert s["dur_in"][0] == BOS and s["dur_out"][-1] == END
    assert list(s["dur_in"][1:]) == list(s["dur_out"][:-1])
    assert list(s["pos_out"]) == [0, 12, 24, 0]
