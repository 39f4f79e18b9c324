"""Web API: every endpoint, file formats, and every kind of bad input (413, 422 per field, 400, 503)."""

from __future__ import annotations

import base64
import threading
import time

import mido
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.api import MAX_UPLOAD_BYTES, create_app
from composer.formats import read_melody, to_abc, to_midi_bytes, to_musicxml_bytes
from composer.music import Melody, Meter, Note


def jig_fragment() -> Melody:
    """Two bars of a D major jig with a pickup: |A|dfa agf|e2d cBA|."""
    e = 12  # an eighth note in ticks
    notes = [Note(69, e), Note(74, e), Note(78, e), Note(81, e), Note(81, e), Note(79, e), Note(78, e),
             Note(76, 2 * e), Note(74, e), Note(73, e), Note(71, e), Note(69, e)]
    return Melody(notes=notes, meter=Meter(6, 8), tonic=2, mode="major", pickup=e, title="Fragment")


def drums_only_midi() -> bytes:
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for _ in range(8):
        track.append(mido.Message("note_on", channel=9, note=36, velocity=100, time=0))
        track.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=480))
    import io

    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(tiny_model_dir):
    with TestClient(create_app(tiny_model_dir, workers=2, queue_limit=8)) as c:
        yield c


@pytest.fixture(scope="module")
def options(client):
    return client.get("/api/options").json()


def compose_body(options, **kw):
    body = {"bars": 4, "meter": options["meters"][0], "seed": 7}
    body.update(kw)
    return body


def pitches(notes) -> list[int]:
    return [n.pitch for n in notes if n.pitch is not None]


def assert_error(r, status: int, field: str | None):
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["error"], str) and body["error"] and "\n" not in body["error"]
    assert body["field"] == field, body
    if status == 422 and field:
        assert field in body["error"] or field.replace("_", " ") in body["error"], body


# --- info endpoints -----------------------------------------------------------------------------

def test_health_names_the_model(client, tiny_model_dir):
    from pathlib import Path

    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model": Path(tiny_model_dir).name}


def test_options_lists_choices_limits_and_defaults(options):
    for key in ("meters", "modes", "keys", "styles", "limits", "defaults"):
        assert key in options
    assert "6/8" in options["meters"] and "major" in options["modes"] and "D" in options["keys"]
    assert options["styles"]
    # Every style has a name to show; one that is not a known collection shows its id.
    assert set(options["style_names"]) == set(options["styles"])
    assert all(isinstance(n, str) and n for n in options["style_names"].values())
    # Each type draws at its own temperature; the tiny model was never calibrated, so at the default.
    assert {u["temperature"] for u in options["forms"].values()} == {options["defaults"]["temperature"]}


def test_the_request_schema_has_the_limits_that_options_advertise(client, options):
    openapi = client.get("/openapi.json").json()
    schema = openapi["components"]["schemas"]
    # (infill's `bars` names bar ranges, not a number of bars)
    fields = {**schema["InfillForm"]["properties"], **schema["ComposeBody"]["properties"],
              **schema["ContinueForm"]["properties"]}
    for path in ("/api/compose", "/api/continue", "/api/infill", "/api/score"):
        query = {p["name"]: p["schema"] for p in openapi["paths"][path]["post"]["parameters"]}
        assert "notation_width" in query, path
        fields.update(query)
    for name, lim in options["limits"].items():
        spec = next(s for s in fields[name].get("anyOf", [fields[name]]) if s.get("type") != "null")
        low = spec.get("minimum", spec.get("exclusiveMinimum"))
        assert (low, spec["maximum"]) == (lim["min"], lim["max"]), name


def test_docs_and_openapi(client):
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    assert "http://" not in r.text and "https://" not in r.text  # no CDN: works offline
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in r.text and client.get(asset).status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/health", "/api/options", "/api/compose", "/api/continue", "/api/score"):
        assert path in paths


def test_playground_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "app.js" in r.text and "style.css" in r.text and "//cdn" not in r.text
    for name, ctype in (("app.js", "javascript"), ("style.css", "text/css"), ("favicon.svg", "svg")):
        r = client.get(f"/{name}")
        assert r.status_code == 200 and ctype in r.headers["content-type"], name
        assert "http://" not in r.text.replace("http://www.w3.org", "") and "https://" not in r.text


def test_unknown_path_is_json_404(client):
    assert_error(client.get("/api/nothing-here"), 404, None)


# --- compose ------------------------------------------------------------------------------------

def test_compose_returns_notes_abc_midi_svg_and_surprisal(client, options):
    r = client.post("/api/compose", json=compose_body(options, key="G"))
    assert r.status_code == 200, r.text
    tune = r.json()
    notes = tune["notes"]
    assert notes and len(tune["surprisal"]) == len(notes)
    for a, b in zip(notes, notes[1:]):
        assert b["start"] == pytest.approx(a["start"] + a["duration"])
    assert all(set(s) == {"rhythm", "pitch"} for s in tune["surprisal"])
    assert tune["bits_per_note"] > 0 and tune["seed"] == 7 and tune["fragment_notes"] == 0
    assert "\nX:1" in "\n" + tune["abc"] and "\nK:" in tune["abc"]
    assert tune["svg"] and tune["svg"].lstrip().startswith("<svg")
    midi = read_melody(base64.b64decode(tune["midi"]), "tune.mid")
    assert pitches(midi.notes) == [n["pitch"] for n in notes if n["pitch"] is not None]
    assert tune["key"] == "G" and tune["meter"] == options["meters"][0]


def test_the_notation_is_engraved_for_the_width_it_is_shown_at(client, options):
    import re

    def engraved(endpoint, width, **kw):
        r = client.post(f"/api/{endpoint}?notation_width={width}", **kw)
        assert r.status_code == 200, r.text
        svg = r.json()["svg"]
        return int(re.match(r'<svg width="(\d+)px"', svg).group(1)), svg.count('class="system"')

    body = {"json": compose_body(options, bars=8)}
    (phone, phone_systems), (desk, desk_systems) = (engraved("compose", w, **body) for w in (320, 900))
    assert (phone, desk) == (320, 900) and phone_systems > desk_systems >= 1
    frag = {"files": upload(to_midi_bytes(jig_fragment()), "f.mid")}
    assert engraved("score", 300, **frag)[0] == 300
    assert engraved("continue", 300, data={"bars": 2, "seed": 1}, **frag)[0] == 300
    lo, hi = options["limits"]["notation_width"].values()
    for bad in (lo - 1, hi + 1, "wide"):
        assert_error(client.post(f"/api/compose?notation_width={bad}", json=body["json"]), 422,
                     "notation_width")


def test_compose_is_reproducible_with_a_seed(client, options):
    a = client.post("/api/compose", json=compose_body(options, seed=123)).json()
    b = client.post("/api/compose", json=compose_body(options, seed=123)).json()
    assert a["notes"] == b["notes"] and a["seed"] == b["seed"] == 123


def test_compose_without_body_uses_defaults(client):
    r = client.post("/api/compose")
    assert r.status_code == 200, r.text
    assert r.json()["notes"]


@pytest.mark.parametrize("fmt,ctype,ext", [
    ("mid", "audio/midi", ".mid"),
    ("abc", "text/vnd.abc", ".abc"),
    ("musicxml", "application/vnd.recordare.musicxml+xml", ".musicxml"),
])
def test_compose_as_file(client, options, fmt, ctype, ext):
    r = client.post(f"/api/compose?format={fmt}", json=compose_body(options))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(ctype)
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f'{ext}"' in disposition
    melody = read_melody(r.content, f"tune{ext}")
    tune = client.post("/api/compose", json=compose_body(options)).json()
    assert pitches(melody.notes) == [n["pitch"] for n in tune["notes"] if n["pitch"] is not None]


def test_unknown_format_is_422(client, options):
    assert_error(client.post("/api/compose?format=wav", json=compose_body(options)), 422, "format")


@pytest.mark.parametrize("field,value", [
    ("meter", "5/4"), ("meter", "waltz"), ("meter", "7/9"),
    ("bars", 0), ("bars", 65), ("bars", "many"), ("bars", 2.5),
    ("temperature", 0), ("temperature", -1), ("temperature", 3.01), ("temperature", "hot"),
    ("best_of", 0), ("best_of", 17),
    ("top_p", 0), ("top_p", 1.5),
    ("key", "H"), ("key", "D##x"), ("mode", "happy"), ("style", "no such style"),
    ("seed", -1), ("seed", 2**40), ("tempo", 0), ("tempo", 10_000),
    ("temprature", 1.0),
])
def test_bad_compose_parameter_is_422_naming_the_field(client, options, field, value):
    assert_error(client.post("/api/compose", json=compose_body(options, **{field: value})), 422, field)


@pytest.mark.parametrize("body,field", [
    ({"type": "jog"}, "type"), ({"form": "A0B"}, "form"), ({"form": "XYZ!"}, "form"),
    ({"form": "A64B64"}, "form"), ({"form": "AABB", "bars": 8}, "form"), ({"type": 3}, "type"),
    ({"pickup": 0.3}, "pickup"), ({"pickup": -1}, "pickup"), ({"meter": "3/4", "pickup": 3}, "pickup"),
])
def test_bad_type_or_form_is_422_naming_the_field(client, body, field):
    assert_error(client.post("/api/compose", json={"seed": 1, **body}), 422, field)


def test_compose_with_a_type_and_form(client, options):
    assert "reel" in options["types"] and options["forms"]["reel"]["form"]
    r = client.post("/api/compose", json={"type": "reel", "form": "A2A2B2B2", "seed": 3})
    assert r.status_code == 200, r.text
    tune = r.json()
    assert tune["form"] == "AABB" and tune["type"] == "reel" and "|:" in tune["abc"]
    played = sum(n["duration"] for n in tune["notes"]) / 4  # 4/4 bars, as played
    assert played == pytest.approx(8) and len(tune["surprisal"]) == len(tune["notes"])
    mid = client.post("/api/compose?format=mid", json={"type": "reel", "form": "A2A2B2B2", "seed": 3})
    from composer.formats import read_melody
    assert read_melody(mid.content, "t.mid").complete_bars() == 8


def test_pickup_in_quarter_notes_and_the_types_usual_one(client, options):
    usual = options["forms"]["jig"]
    tune = client.post("/api/compose", json={"type": "jig", "seed": 3}).json()
    assert tune["pickup"] == usual["pickup"] / 24 and tune["style"] == usual["style"]
    tune = client.post("/api/compose", json={"type": "jig", "pickup": 0.5, "seed": 3}).json()
    assert tune["pickup"] == 0.5
    r = client.post("/api/continue", files=upload(to_midi_bytes(jig_fragment()), "f.mid"),
                    data={"bars": 2, "pickup": 0.5})
    assert_error(r, 422, "pickup")


def test_bad_json_bodies_are_422(client):
    r = client.post("/api/compose", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 422, None)
    assert "JSON" in r.json()["error"]
    assert_error(client.post("/api/compose", json=[1, 2]), 422, None)
    for raw, field in ((b'{"temperature": NaN}', "temperature"), (b'{"tempo": Infinity}', "tempo")):
        r = client.post("/api/compose", content=raw, headers={"content-type": "application/json"})
        assert_error(r, 422, field)


def test_compose_accepts_aliases_and_any_case(client):
    r = client.post("/api/compose", json={"bars": 2, "key": "bb", "mode": "Dor", "seed": 1,
                                          "meter": "6/8"})
    assert r.status_code == 200, r.text
    assert r.json()["key"] == "Bb" and r.json()["mode"] == "dorian"


def test_keys_are_offered_and_answered_as_spelled(client, options):
    assert {"F#", "Gb", "C#", "Db", "G#", "D#", "A#", "Cb"} <= set(options["keys"])
    for key, mode, k_line in (("F#", "major", "K:F#maj"), ("G#", "minor", "K:G#m"), ("eb", "minor", "K:Ebm")):
        r = client.post("/api/compose", json={"bars": 2, "key": key, "mode": mode, "seed": 1})
        assert r.status_code == 200, r.text
        tune = r.json()
        assert tune["key"] == key.capitalize() and f"\n{k_line}\n" in tune["abc"]
    r = client.post("/api/compose", json={"bars": 2, "key": "G#", "mode": "major", "seed": 1})
    assert_error(r, 422, "key")
    assert "Ab" in r.json()["error"]
    r = client.post("/api/compose", json={"bars": 2, "key": "F#m", "seed": 1})
    assert_error(r, 422, "key")
    assert "--mode minor" in r.json()["error"]
    r = client.post("/api/continue", files=upload(to_midi_bytes(jig_fragment()), "f.mid"),
                    data={"bars": "1", "key": "C#", "seed": "2"})
    assert r.status_code == 200, r.text
    assert r.json()["key"] == "C#" and "\nK:C#maj\n" in r.json()["abc"]


# --- continue and score -------------------------------------------------------------------------

def upload(data: bytes, name: str):
    return {"file": (name, data, "application/octet-stream")}


@pytest.mark.parametrize("kind", ["mid", "abc", "musicxml"])
def test_continue_keeps_the_fragment_and_adds_bars(client, kind):
    frag = jig_fragment()
    data = {"mid": to_midi_bytes, "abc": lambda m: to_abc([m]).encode(),
            "musicxml": to_musicxml_bytes}[kind](frag)
    r = client.post("/api/continue", files=upload(data, f"fragment.{kind}"), data={"bars": 2, "seed": 5})
    assert r.status_code == 200, r.text
    tune = r.json()
    k = tune["fragment_notes"]
    assert k > 0 and len(tune["notes"]) > k
    assert [n["pitch"] for n in tune["notes"][:k]] == [n.pitch for n in frag.notes][:k]
    assert tune["meter"] == "6/8" and tune["seed"] == 5 and len(tune["surprisal"]) == len(tune["notes"])
    assert tune["svg"] and "<style>" in tune["svg"]  # fragment and new notes drawn in two colours


def test_continue_as_midi_file(client):
    r = client.post("/api/continue?format=mid", files=upload(to_midi_bytes(jig_fragment()), "f.mid"),
                    data={"bars": 2, "seed": 1})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/midi"
    assert len(read_melody(r.content, "x.mid").notes) > len(jig_fragment().notes) // 2


@pytest.mark.parametrize("field,value", [("bars", 0), ("bars", 65), ("keep_bars", 0), ("temperature", 9),
                                         ("best_of", 40), ("meter", "5/4"), ("mode", "happy")])
def test_bad_continue_field_is_422(client, field, value):
    r = client.post("/api/continue", files=upload(to_midi_bytes(jig_fragment()), "f.mid"),
                    data={field: str(value)})
    assert_error(r, 422, field)


def test_continue_overrides_key_and_mode(client):
    r = client.post("/api/continue", files=upload(to_midi_bytes(jig_fragment()), "f.mid"),
                    data={"bars": "1", "key": "G", "mode": "dorian", "seed": "2"})
    assert r.status_code == 200, r.text
    tune = r.json()
    assert tune["key"] == "G" and tune["mode"] == "dorian"
    k = tune["fragment_notes"]
    shifted = [n["pitch"] for n in tune["notes"][:k]]
    assert shifted == [n.pitch + 5 for n in jig_fragment().notes][:k]  # D -> G is 5 up


def test_a_fragment_in_a_meter_the_model_does_not_know(client):
    five = Melody(notes=[Note(62, 24)] * 10, meter=Meter(5, 4), tonic=2, mode="major")
    files = upload(to_midi_bytes(five), "five.mid")
    r = client.post("/api/continue", files=files)
    assert_error(r, 400, "file")
    assert "5/4" in r.json()["error"]
    assert_error(client.post("/api/score", files=files), 400, "file")
    # Read as 4/4 on request, it is fine.
    r = client.post("/api/continue", files=upload(to_midi_bytes(five), "five.mid"),
                    data={"meter": "4/4", "bars": "1"})
    assert r.status_code == 200, r.text
    assert r.json()["meter"] == "4/4"


def test_continue_without_file_is_422(client):
    assert_error(client.post("/api/continue", data={"bars": "2"}), 422, "file")


def truncated_midi() -> bytes:
    data = to_midi_bytes(jig_fragment())
    return data[: len(data) // 2]


BAD_FILES = {
    "garbage": (bytes(range(256)) * 8, "noise.mid"),
    "truncated": (truncated_midi(), "cut.mid"),
    "empty": (b"", "empty.mid"),
    "drums only": (drums_only_midi(), "drums.mid"),
    "text": (b"just some words, no music at all", "words.abc"),
    "unknown type": (b"\x89PNG\r\n\x1a\n" + bytes(64), "picture.png"),
    # Bounded work per upload: these would take seconds to parse and engrave.
    "too many notes": (to_midi_bytes(Melody([Note(60 + i % 12, 12) for i in range(5000)], Meter(6, 8))),
                       "long.mid"),
    "too long": (to_abc([Melody([Note(60 + i % 12, 12) for i in range(9000)], Meter(6, 8))]).encode(),
                 "long.abc"),
}


@pytest.mark.parametrize("endpoint", ["/api/continue", "/api/score"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_file_that_is_not_music_is_400(client, endpoint, case):
    data, name = BAD_FILES[case]
    assert_error(client.post(endpoint, files=upload(data, name)), 400, "file")


@pytest.mark.parametrize("endpoint", ["/api/continue", "/api/score"])
def test_upload_over_1mb_is_413(client, endpoint):
    big = b"\0" * (MAX_UPLOAD_BYTES + 1)
    assert_error(client.post(endpoint, files=upload(big, "big.mid")), 413, "file")


def test_chunked_upload_over_1mb_is_413(client):
    def chunks():
        for _ in range(20):
            yield b"x" * 65536

    r = client.post("/api/score", content=chunks(),
                    headers={"content-type": "multipart/form-data; boundary=abc"})
    assert_error(r, 413, "file")


def test_huge_json_body_is_413(client):
    assert_error(client.post("/api/compose", json={"style": "x" * (2 * MAX_UPLOAD_BYTES)}), 413, "file")


def test_score_reports_surprisal_per_note(client):
    frag = jig_fragment()
    r = client.post("/api/score", files=upload(to_midi_bytes(frag), "tune.mid"))
    assert r.status_code == 200, r.text
    report = r.json()
    assert len(report["notes"]) == len(report["surprisal"]) == len(frag.notes)
    assert report["bits_per_note"] > 0
    total = sum(s["rhythm"] + s["pitch"] for s in report["surprisal"]) + report["end_bits"]
    assert report["bits_per_note"] == pytest.approx(total / (len(frag.notes) + 1), rel=0.01)
    assert len(report["most_surprising"]) == 5


# --- saturation ---------------------------------------------------------------------------------

def test_503_with_retry_after_when_pool_and_queue_are_full(tiny_model_dir, monkeypatch):
    app = create_app(tiny_model_dir, workers=1, queue_limit=1, client_share=3, max_wait=60)
    release, started = threading.Event(), threading.Event()
    with TestClient(app) as c:
        real = app.state.composer.compose

        def slow(req):
            started.set()
            assert release.wait(30)
            return real(req)

        monkeypatch.setattr(app.state.composer, "compose", slow)
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(
            c.post("/api/compose", json={"bars": 2}).status_code)) for _ in range(2)]
        threads[0].start()
        assert started.wait(30)
        threads[1].start()  # the second one waits in the queue
        deadline = time.monotonic() + 30
        while len(app.state.admission.jobs) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        r = c.post("/api/compose", json={"bars": 2})
        assert_error(r, 503, None)
        assert int(r.headers["retry-after"]) >= 1
        assert c.get("/api/health").status_code == 200  # cheap endpoints still answer
        release.set()
        for t in threads:
            t.join(30)
        assert results == [200, 200]
        assert not app.state.admission.jobs
        assert c.post("/api/compose", json={"bars": 2}).status_code == 200


# --- no input gives 500 -------------------------------------------------------------------------

values = st.one_of(st.none(), st.booleans(), st.integers(-10, 100),
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=8), st.sampled_from(["6/8", "4/4", "D", "Bb", "minor", "jigs"]),
                   st.lists(st.integers(), max_size=2))
fields = st.sampled_from(["bars", "meter", "key", "mode", "style", "tempo", "temperature", "top_p",
                          "seed", "best_of"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(fields, values, max_size=5))
def test_any_compose_body_gets_200_or_422(client, body):
    body.setdefault("bars", 2)
    if isinstance(body.get("bars"), int) and not isinstance(body["bars"], bool):
        body["bars"] = min(body["bars"], 4)  # keep generation short; range errors are tested above
    body.pop("best_of", None)
    r = client.post("/api/compose", json=body)
    assert r.status_code in (200, 422), (body, r.text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400),
       name=st.sampled_from(["a.mid", "a.abc", "a.xml", "a.musicxml", "a"]))
def test_any_upload_gets_200_or_400(client, data, name):
    r = client.post("/api/score", files=upload(data, name))
    assert r.status_code in (200, 400), r.text


def test_continue_an_a_part_to_a_form(client):
    a_part = b"X:1\nT:A part\nR:jig\nM:6/8\nL:1/8\nK:D\n|:DEF GAB|A3 d3|FED EFA|d3 d3:|\n"
    r = client.post("/api/continue", files={"file": ("a.abc", a_part, "text/plain")},
                    data={"form": "AABB", "bars": "8", "seed": "2"})
    assert r.status_code == 200, r.text
    tune = r.json()
    assert tune["form"] == "AABB" and tune["abc"].count("|:") >= 1
    own = [n for n in tune["notes"] if n["fragment"]]
    assert len(own) == 2 * tune["fragment_notes"]  # the A part, played twice
    bad = client.post("/api/continue", files={"file": ("a.abc", a_part, "text/plain")},
                      data={"form": "A1"})
    assert_error(bad, 422, "form")


def test_a_request_without_a_temperature_draws_at_the_tune_types(tiny_model_dir, tmp_path):
    """compose, continue and infill: no temperature sent is the type's (the model's config),
    one sent is that one."""
    import json
    import shutil

    model = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["sampling"] = {"temperature": {"jig": 2.5}}
    (model / "config.json").write_text(json.dumps(config))
    a_part = b"X:1\nT:A part\nR:jig\nM:6/8\nL:1/8\nK:D\n|:DEF GAB|A3 d3|FED EFA|d3 d3:|\n"

    def notes(c, endpoint, **fields):
        """The notes of the answer, after checking the temperature it says it drew at."""
        if endpoint == "compose":
            r = c.post("/api/compose", json={"type": "jig", "seed": 3, **fields})
        else:
            extra = {"bars": "2-3"} if endpoint == "infill" else {"bars": "4"}
            r = c.post(f"/api/{endpoint}", files={"file": ("a.abc", a_part, "text/plain")},
                       data={"seed": "3", **extra, **{k: str(v) for k, v in fields.items()}})
        assert r.status_code == 200, r.text
        assert r.json()["temperature"] == fields.get("temperature", 2.5)
        return [(n["pitch"], n["duration"]) for n in r.json()["notes"]]

    with TestClient(create_app(str(model), workers=1)) as c:
        assert c.get("/api/options").json()["forms"]["jig"]["temperature"] == 2.5
        for endpoint in ("compose", "continue", "infill"):
            assert notes(c, endpoint) == notes(c, endpoint, temperature=2.5), endpoint
            assert notes(c, endpoint) != notes(c, endpoint, temperature=0.9), endpoint
