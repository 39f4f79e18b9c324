"""The playground in a real Chromium: compose, see notation, play, continue an upload, download."""

from __future__ import annotations

import os
import socket
import threading
import time
from urllib.parse import parse_qs, urlparse

import pytest

from composer.formats import read_melody, to_midi_bytes
from composer.music import Melody, Meter, Note
from composer.requests import DEFAULT_TEMPERATURE

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


JIG_TEMPERATURE = 1.25  # the served model's jigs draw at this (as `composer calibrate` writes)


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """A real uvicorn server on loopback, in a thread of this process, serving the tiny model
    with a temperature of its own for jigs."""
    import json
    import shutil

    import uvicorn

    from composer.api import create_app
    from composer.httpguard import Access

    model = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["sampling"] = {"temperature": {"jig": JIG_TEMPERATURE}}
    (model / "config.json").write_text(json.dumps(config))
    port = free_port()
    app = create_app(str(model), workers=2, access=Access.for_server("127.0.0.1", [], []))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def fragment_midi() -> bytes:
    e = 12
    notes = [Note(p, d) for p, d in [(62, e), (66, e), (69, e), (71, 2 * e), (69, e),
                                      (67, e), (66, e), (64, e), (62, 3 * e)]]
    return to_midi_bytes(Melody(notes=notes, meter=Meter(6, 8), tonic=2, mode="major", title="Fragment"))


def wait_until(page, expression: str, timeout: float = 30000, arg=None) -> None:
    """Wait until `expression` (with `arg`, a function of it) is true in the page, polled from
    here: the page's security policy forbids the string evaluation that Playwright's own
    wait_for_function uses."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression, arg):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def watch_console(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    return errors


def test_compose_play_continue_download(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    errors = watch_console(page)
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#meter').options.length > 0")
    assert "model:" in page.text_content("#model")

    # Compose: notation, piano roll, bits/note.
    page.fill("#bars", "4")
    page.select_option("#meter", "6/8")
    with page.expect_response("**/api/compose?*") as resp:
        page.click("#go")
    tune = resp.value.json()
    assert tune["svg"].lstrip().startswith("<svg")
    wait_until(page, "document.querySelector('#notation').naturalWidth > 0")
    assert page.is_visible("#notation") and page.is_visible("#roll")
    assert "bits/note" in page.text_content("#bits")
    assert page.evaluate("document.querySelector('#roll').width") > 100

    # Play highlights notes as they sound; Stop ends it.
    page.click("#play")
    wait_until(page, "Number(document.querySelector('#roll').dataset.current) >= 0", timeout=10000)
    assert page.text_content("#play").strip().endswith("Stop")
    page.click("#play")
    assert page.get_attribute("#roll", "data-playing") == "false"

    # Continue an uploaded MIDI fragment.
    page.click("#tab-continue")
    page.set_input_files("#file", files=[{"name": "fragment.mid", "mimeType": "audio/midi",
                                          "buffer": fragment_midi()}])
    page.fill("#new-bars", "2")
    with page.expect_response("**/api/continue?*") as resp:
        page.click("#go")
    cont = resp.value.json()
    assert resp.value.status == 200, cont
    assert cont["fragment_notes"] > 0 and len(cont["notes"]) > cont["fragment_notes"]
    wait_until(page, "document.querySelector('#notation').naturalWidth > 0")
    assert page.is_visible("#legend-fragment")
    assert page.text_content("#legend-new-label") == "new bars"

    # Download the MIDI and parse it.
    with page.expect_download() as dl:
        page.click("#dl-mid")
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.suffix == ".mid"
    melody = read_melody(path.read_bytes(), path.name)
    sounding = [n["pitch"] for n in cont["notes"] if n["pitch"] is not None]
    assert [n.pitch for n in melody.notes if n.pitch is not None] == sounding

    # MusicXML comes from the server, made again from the same request and seed.
    with page.expect_download() as dl:
        page.click("#dl-musicxml")
    xml = tmp_path / dl.value.suggested_filename
    dl.value.save_as(xml)
    assert xml.suffix == ".musicxml" and b"score-partwise" in xml.read_bytes()

    page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
    assert (tmp_path / "playground.png").stat().st_size > 10_000
    assert errors == [], errors

    # An API error shows as a readable message (the browser logs the 400 itself; that is expected).
    page.set_input_files("#file", files=[{"name": "noise.mid", "mimeType": "audio/midi",
                                          "buffer": b"this is not a midi file"}])
    page.click("#go")
    page.wait_for_selector("#error:not([hidden])")
    message = page.text_content("#error")
    assert message and "\n" not in message.strip() and "{" not in message
    unexpected = [e for e in errors if "status of 400" not in e]
    assert unexpected == [], unexpected


def test_pasted_abc_can_be_scored_and_continued(server, browser):
    page = browser.new_page()
    errors = watch_console(page)
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#meter').options.length > 0")
    page.click("#tab-continue")
    page.fill("#abc-text", "X:1\nT:Pasted\nM:6/8\nL:1/8\nK:D\nA|dfa agf|e2d cBA|\n")
    with page.expect_response("**/api/score?*") as resp:
        page.click("#score")
    assert resp.value.status == 200
    wait_until(page, "document.querySelector('#title').textContent === 'Pasted'")
    assert "bits/note" in page.text_content("#bits")
    page.fill("#new-bars", "1")
    with page.expect_response("**/api/continue?*") as resp:
        page.click("#go")
    cont = resp.value.json()
    assert resp.value.status == 200 and cont["fragment_notes"] == 12
    assert [n["pitch"] for n in cont["notes"][:4]] == [69, 74, 78, 81]
    wait_until(page, "document.querySelector('#legend-new-label').textContent === 'new bars'")
    assert errors == [], errors


def test_phone_width_layout(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    errors = watch_console(page)
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#meter').options.length > 0")
    page.fill("#bars", "4")
    page.click("#go")
    wait_until(page, "document.querySelector('#notation').naturalWidth > 0")
    # Nothing sticks out sideways: the page does not scroll horizontally.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for sel in ("#go", "#play", "#dl-mid", "#roll"):
        box = page.locator(sel).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, sel
    page.screenshot(path=str(tmp_path / "playground-phone.png"), full_page=True)
    assert errors == [], errors


def test_options_drive_the_controls(server, browser):
    page = browser.new_page()
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#meter').options.length > 0")
    import httpx

    options = httpx.get(server + "/api/options").json()
    meters = page.eval_on_selector_all("#meter option", "els => els.map(e => e.value)")
    modes = page.eval_on_selector_all("#mode option", "els => els.map(e => e.value)")
    styles = page.eval_on_selector_all("#style option", "els => els.map(e => e.value)")
    assert meters == options["meters"] and modes == options["modes"]
    assert styles == options["styles"]
    # The menu shows each style's collection name; the value sent is its id.
    shown = page.eval_on_selector_all("#style option", "els => els.map(e => e.textContent)")
    assert shown == [options["style_names"][s] for s in options["styles"]]
    assert page.input_value("#style") == options["defaults"]["style"]
    # The page's limits and defaults are the ones /api/options advertises (it has none of its own).
    limits, defaults = options["limits"], options["defaults"]
    for selector, name in (("#bars", "bars"), ("#new-bars", "bars"), ("#keep-bars", "keep_bars"),
                           ("#tempo", "tempo"), ("#seed", "seed")):
        assert page.get_attribute(selector, "min") == str(limits[name]["min"]), selector
        assert page.get_attribute(selector, "max") == str(limits[name]["max"]), selector
    assert float(page.get_attribute("#temperature", "max")) == limits["temperature"]["max"]
    assert float(page.get_attribute("#temperature", "min")) > limits["temperature"]["min"]
    assert float(page.input_value("#temperature")) == defaults["temperature"]
    assert int(page.input_value("#bars")) == defaults["bars"]
    assert float(page.input_value("#tempo")) == defaults["tempo"]
    # A bad value typed into a field comes back from the API as a readable message.
    page.fill("#bars", "99")
    page.click("#go")
    page.wait_for_selector("#error:not([hidden])")
    assert "bars" in page.text_content("#error")
    assert page.get_attribute("#bars", "aria-invalid") == "true"


def test_the_temperature_is_the_types_until_the_user_moves_it(server, browser):
    page = browser.new_page()
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#type').options.length > 1")
    page.select_option("#type", "jig")
    assert float(page.input_value("#temperature")) == JIG_TEMPERATURE
    assert page.text_content("#temperature-out") == f"{JIG_TEMPERATURE:.2f}"
    with page.expect_request("**/api/compose?*") as req:
        page.click("#go")
    assert "temperature" not in req.value.post_data_json  # the server draws at the type's
    page.select_option("#type", "")  # the meter's usual type will decide
    assert page.text_content("#temperature-out") == "auto"
    assert float(page.input_value("#temperature")) == DEFAULT_TEMPERATURE
    page.fill("#temperature", "0.7")
    page.dispatch_event("#temperature", "input")
    page.select_option("#type", "jig")
    assert float(page.input_value("#temperature")) == 0.7  # the user's choice stays
    assert page.is_visible("#temperature-auto")
    page.wait_for_selector("#go:not([disabled])")
    with page.expect_request("**/api/compose?*") as req:
        page.click("#go")
    assert req.value.post_data_json["temperature"] == 0.7
    page.click("#temperature-auto")  # back to the type's
    assert float(page.input_value("#temperature")) == JIG_TEMPERATURE
    assert page.is_hidden("#temperature-auto")
    page.wait_for_selector("#go:not([disabled])")
    with page.expect_request("**/api/compose?*") as req:
        page.click("#go")
    assert "temperature" not in req.value.post_data_json


def test_a_type_and_form_give_repeats_in_the_notation_and_the_player(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = watch_console(page)
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#type').options.length > 1")
    page.select_option("#type", "jig")
    assert page.input_value("#meter") == "6/8"  # the type's usual meter
    assert page.is_disabled("#bars")  # the form sets the bars
    page.fill("#form-spec", "A2A2B2B2")
    with page.expect_response("**/api/compose?*") as resp:
        page.click("#go")
    tune = resp.value.json()
    assert resp.value.status == 200, tune
    assert tune["form"] == "AABB" and "|:" in tune["abc"]
    assert "AABB" in page.text_content("#form-chip")
    written = tune["abc"].count("|") - tune["abc"].count("||")
    played = sum(n["duration"] for n in tune["notes"]) / 3  # 6/8 bars as played
    assert played == 8 and written < 2 * 8
    wait_until(page, "document.querySelector('#notation').naturalWidth > 0")
    page.click("#play")
    wait_until(page, "Number(document.querySelector('#roll').dataset.current) >= 0", timeout=10000)
    page.click("#play")

    page.fill("#form-spec", "A0B")
    with page.expect_response("**/api/compose?*") as resp:
        page.click("#go")
    assert resp.value.status == 422
    wait_until(page, "!document.querySelector('#error').hidden")
    assert page.get_attribute("#form-spec", "aria-invalid") == "true"
    assert [e for e in errors if "422" not in e] == []
    page.close()


# Where the notation's drawn parts lie on the screen, in CSS px: the page's SVG is drawn once more,
# inline and unseen (its styles left out), to measure its elements, then mapped onto the <img> as shown. `space` is the
# distance between two staff lines as shown.
MEASURE_NOTATION = r"""() => {
  const img = document.querySelector('#notation'), frame = img.parentElement;
  const shown = img.getBoundingClientRect(), cs = getComputedStyle(frame);
  const fr = frame.getBoundingClientRect();
  const probe = document.createElement('div');
  probe.style.cssText = 'position:absolute;left:0;top:0;visibility:hidden';
  // styles stripped: the page's policy refuses inline styles, and they do not move anything
  probe.innerHTML = state.tune.svg.replace(/<style[\s\S]*?<\/style>/g, '').replace(/ style="[^"]*"/g, '');
  document.body.append(probe);
  const svg = probe.querySelector('svg'), r = svg.getBoundingClientRect();
  const k = shown.width / r.width;
  let left = Infinity, right = -Infinity;
  for (const el of svg.querySelectorAll('path, use, text, rect, polygon, polyline, ellipse')) {
    const b = el.getBoundingClientRect();
    if (b.width || b.height) { left = Math.min(left, b.left - r.left); right = Math.max(right, b.right - r.left); }
  }
  const lines = [...svg.querySelector('g.staff').querySelectorAll(':scope > path')]
    .map((p) => p.getBoundingClientRect().top);
  probe.remove();
  return { left: shown.left + left * k, right: shown.left + right * k,
           frameLeft: fr.left + parseFloat(cs.borderLeftWidth) + parseFloat(cs.paddingLeft),
           frameRight: fr.right - parseFloat(cs.borderRightWidth) - parseFloat(cs.paddingRight),
           space: (lines[1] - lines[0]) * k, engraved: r.width, shownWidth: shown.width,
           scroll: frame.scrollWidth - frame.clientWidth, page: document.documentElement.scrollWidth };
}"""


def assert_notation_fits(page, width: int) -> dict:
    m = page.evaluate(MEASURE_NOTATION)
    # Every drawn part lies inside the notation frame, and the frame inside the screen.
    assert m["frameLeft"] - 0.5 <= m["left"] and m["right"] <= m["frameRight"] + 0.5, m
    assert m["frameLeft"] >= 0 and m["frameRight"] <= width and m["page"] <= width, m
    assert m["scroll"] <= 0, m  # nothing to scroll to in the frame either
    # Legible: engraved for the width it is shown at, not shrunk to fit (a 720-px engraving
    # squeezed onto a phone has about 3 px between staff lines).
    assert abs(m["shownWidth"] - m["engraved"]) <= 0.1 * m["engraved"], m
    assert m["space"] >= 6, m
    return m


@pytest.mark.parametrize("first,then", [(390, 1280), (1280, 390)])
def test_the_notation_fits_the_screen_and_is_engraved_again_for_a_new_width(
        server, browser, first, then):
    page = browser.new_page(viewport={"width": first, "height": 844})
    errors = watch_console(page)
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#type').options.length > 1")
    page.select_option("#type", "jig")  # two parts with repeats: several lines of music
    page.fill("#seed", "3")
    with page.expect_response(lambda r: "/api/compose" in r.url) as resp:
        page.click("#go")
    wait_until(page, "document.querySelector('#notation').naturalWidth > 0")
    m = assert_notation_fits(page, first)
    assert resp.value.status == 200
    asked = int(parse_qs(urlparse(resp.value.url).query)["notation_width"][0])
    assert abs(asked - (m["frameRight"] - m["frameLeft"])) <= 1  # the width it is shown at

    # A new width (a phone turned, a window resized): the same tune, engraved for it.
    before = page.evaluate("({src: notation.src, abc: state.tune.abc})")
    with page.expect_response(lambda r: "notation_width=" in r.url, timeout=10000) as resp:
        page.set_viewport_size({"width": then, "height": 844})
    assert resp.value.json()["abc"] == before["abc"]
    wait_until(page, "s => notation.src !== s && notation.complete && notation.naturalWidth > 0",
                           arg=before["src"])
    assert page.evaluate("state.tune.abc") == before["abc"]
    assert_notation_fits(page, then)
    assert errors == [], errors
    page.close()


def test_a_short_note_rises_then_falls_to_silence(server, browser):
    page = browser.new_page()
    # Record every value the page schedules on an AudioParam, per param, in call order.
    page.add_init_script("""(() => {
      const seen = new WeakMap(); window.scheduled = [];
      for (const m of ['setValueAtTime', 'linearRampToValueAtTime', 'exponentialRampToValueAtTime']) {
        const orig = AudioParam.prototype[m];
        AudioParam.prototype[m] = function (v, t) {
          if (!seen.has(this)) { seen.set(this, scheduled.length); scheduled.push([]); }
          scheduled[seen.get(this)].push([v, t]);
          return orig.call(this, v, t);
        };
      }
    })()""")
    errors = watch_console(page)
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#meter').options.length > 0")
    page.select_option("#meter", "6/8")
    page.fill("#bars", "4")
    page.fill("#tempo", "400")  # an eighth lasts 0.075 s, a quarter 0.15 s
    page.fill("#seed", "1")
    with page.expect_response(lambda r: "/api/compose" in r.url):
        page.click("#go")
    page.click("#play")
    wait_until(page, "scheduled.length > 0")
    page.click("#play")
    envelopes = page.evaluate("scheduled")
    sounding = [n for n in page.evaluate("state.tune.notes") if n["pitch"] is not None]
    assert len(envelopes) == len(sounding)
    shortest = min(env[-1][1] - env[0][1] for env in envelopes)
    assert shortest < 0.13, shortest  # shorter than a sixteenth at 120 bpm
    for env in envelopes:
        times = [t for _, t in env]
        values = [v for v, _ in env]
        assert times == sorted(times), env  # scheduled in time order: no event undoes another
        top = values.index(max(values))
        assert values[0] == 0 and values[top] == 1, env
        assert all(a <= b for a, b in zip(values[:top], values[1:top + 1])), env  # only up
        assert all(a >= b for a, b in zip(values[top:], values[top + 1:])), env  # then only down
        assert values[-1] <= 0.001, env  # silent when the note ends
    assert errors == [], errors
    page.close()


def test_the_note_label_names_its_length_and_the_state_is_declared(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = watch_console(page)
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#meter').options.length > 0")
    declared = page.evaluate("Object.keys(state)")
    page.select_option("#meter", "6/8")
    page.fill("#bars", "4")
    page.fill("#seed", "2")
    with page.expect_response(lambda r: "/api/compose" in r.url):
        page.click("#go")
    wait_until(page, "state.layout && state.layout.rects.length > 0")
    notes = page.evaluate("state.tune.notes")
    i = next(k for k, n in enumerate(notes) if n["pitch"] is not None and n["duration"] == 0.5)
    r = page.evaluate(f"state.layout.rects[{i}]")
    box = page.locator("#roll").bounding_box()
    page.mouse.move(box["x"] + r["x"] + r["w"] / 2, box["y"] + r["y"] + r["h"] / 2)
    label = page.text_content("#hover")
    assert f"note {i + 1} " in label and "eighth note" in label and "beat" not in label, label

    # A scored tune marks every note as the user's; no part of the page adds state undeclared.
    page.click("#tab-continue")
    page.fill("#abc-text", "X:1\nT:Pasted\nM:6/8\nL:1/8\nK:D\nA|dfa agf|e2d cBA|\n")
    with page.expect_response(lambda r: "/api/score" in r.url):
        page.click("#score")
    wait_until(page, "document.querySelector('#title').textContent === 'Pasted'")
    assert page.evaluate("state.fragmentAll") is True
    assert page.evaluate("Object.keys(state)") == declared and "fragmentAll" in declared
    assert errors == [], errors
    page.close()


NOTES = "state.tune.notes.map((n) => [n.bar, n.start, n.pitch, n.duration])"
BAR_POINT = """(b) => {
  const t = state.tune, r = document.querySelector('#roll').getBoundingClientRect();
  const total = Math.max(...t.notes.map((n) => n.start + n.duration));
  const n = t.notes.find((n) => n.bar === b), q = n.start + n.duration / 2;
  return { x: 6 + (q / total) * (r.width - 12), y: r.height / 2 };
}"""


def test_bars_are_selected_regenerated_locked_and_undone(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = watch_console(page)
    page.goto(server + "/")
    wait_until(page, "document.querySelector('#meter').options.length > 0")
    page.fill("#bars", "8")
    page.fill("#seed", "5")
    page.click("#go")
    wait_until(page, "state.tune !== null && state.last.endpoint === 'compose'")
    composed = page.evaluate(NOTES)

    def click_bar(b: int, shift: bool = False) -> None:
        page.click("#roll", position=page.evaluate(BAR_POINT, b),
                   modifiers=["Shift"] if shift else [])

    # In the notation: one box per written bar (a lead-in has its own), in reading order; a
    # click there selects its bar. 8 bars of the default meter start with its type's lead-in.
    lead_in = page.evaluate("(state.tune.pickup || 0) > 0")
    assert lead_in
    boxes = page.evaluate("measureBoxes(state.tune.svg)")
    assert len(boxes) == 8 + lead_in and all(0 <= b["x0"] < b["x1"] <= 1 for b in boxes)
    assert all((a["y0"], a["x0"]) < (b["y0"], b["x0"]) for a, b in zip(boxes, boxes[1:]))
    size = page.evaluate("(() => { const r = document.querySelector('#notation')"
                         ".getBoundingClientRect(); return [r.width, r.height]; })()")
    six = boxes[5 + lead_in]
    page.click("#notation", position={"x": (six["x0"] + six["x1"]) / 2 * size[0],
                                      "y": (six["y0"] + six["y1"]) / 2 * size[1]})
    assert page.evaluate("[...bars.selected]") == [6]
    click_bar(3)
    click_bar(4, shift=True)  # a range
    assert sorted(page.evaluate("[...bars.selected]")) == [3, 4]
    assert page.text_content("#bar-status") == "bars 3-4 selected"
    with page.expect_response(lambda r: "/api/infill" in r.url) as resp:
        page.click("#regenerate")
    assert resp.value.status == 200
    wait_until(page, "state.last.endpoint === 'infill'")
    infilled = page.evaluate(NOTES)
    outside = lambda notes, inside: [n for n in notes if n[0] not in inside]  # noqa: E731
    assert outside(infilled, (3, 4)) == outside(composed, (3, 4))  # every other note kept
    # The new notes are marked (coloured as new), and only in bars 3 and 4.
    assert page.evaluate("state.tune.notes.filter((n) => !n.fragment).map((n) => n.bar)")
    assert page.evaluate("state.tune.notes.every((n) => n.fragment || [3, 4].includes(n.bar))")
    assert page.text_content("#legend-fragment-label") == "kept bars"

    page.click("#undo")
    assert page.evaluate(NOTES) == composed
    page.click("#redo")
    assert page.evaluate(NOTES) == infilled

    # Bars 1-2 locked: "Compose" writes only the other bars, and keeps those.
    click_bar(1)
    click_bar(2, shift=True)
    page.click("#lock")
    assert page.text_content("#bar-status") == "bars 1-2 locked"
    page.fill("#seed", "9")
    with page.expect_response(lambda r: "/api/infill" in r.url) as resp:
        page.click("#go")
    assert resp.value.status == 200
    wait_until(page, "state.last.fields.seed === 9")
    assert page.evaluate("state.last.fields.bars") == "3-8"  # every bar but the locked ones
    again = page.evaluate(NOTES)
    assert [n for n in again if n[0] in (1, 2)] == [n for n in infilled if n[0] in (1, 2)]
    page.click("#undo")
    assert page.evaluate(NOTES) == infilled
    assert errors == [], errors
