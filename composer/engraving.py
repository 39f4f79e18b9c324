"""Server-side notation: ABC engraved to SVG with verovio, a fragment's notes coloured apart."""

from __future__ import annotations

import logging
import re
import threading
from importlib.resources import files

import verovio

FRAGMENT_COLOUR, NEW_COLOUR = "#34568f", "#b4472b"  # as in the playground's piano roll

log = logging.getLogger(__name__)


class NotationRenderer:
    """Engraves ABC to SVG with verovio, keeping one toolkit per worker thread."""

    SCALE = 40  # percent: a staff space of 7.2 CSS px, legible on a phone
    WIDTH = 720  # the width in CSS px to engrave for when none is asked for
    OPTIONS = {"footer": "none", "header": "none", "adjustPageHeight": True, "pageHeight": 60000,
               "scale": SCALE, "breaks": "auto", "svgFormatRaw": True,
               "xmlIdChecksum": True}  # ids from the input, so the same tune gives the same SVG

    def __init__(self) -> None:
        self._local = threading.local()
        self._resources = str(files("verovio") / "data")
        verovio.enableLog(verovio.LOG_OFF)  # its notes on ABC details would flood the log

    def _toolkit(self) -> verovio.toolkit:
        tk = getattr(self._local, "toolkit", None)
        if tk is None:
            # verovio's default resource path is set per thread, so name its fonts explicitly.
            tk = verovio.toolkit(False)
            tk.setResourcePath(self._resources)
            tk.setOptions(self.OPTIONS)
            tk.setInputFrom("abc")
            self._local.toolkit = tk
        return tk

    def svg(self, abc: str, new: list[tuple[float, float]] | None = None,
            width: int | None = None) -> str | None:
        """The notation of the first tune in `abc`, or None if verovio cannot engrave it.

        The SVG is `width` CSS px wide (None: WIDTH), its systems broken to fit, at one scale
        whatever the width, so that a narrow screen gets more systems, not smaller notes.
        With `new` (spans [start, end) in quarter notes of the written tune) the notes in them
        are drawn in the new-bars colour and the rest in the user's colour, as in the page's
        piano roll."""
        try:
            tk = self._toolkit()
            tk.setOptions({"pageWidth": round((width or self.WIDTH) * 100 / self.SCALE)})
            if not tk.loadData(abc) or tk.getPageCount() < 1:
                return None
            svg = tk.renderToSVG(1)
            if not svg.lstrip().startswith(("<svg", "<?xml")):
                return None
            if new:
                svg = _colour(svg, tk.renderToTimemap({"includeRests": True}), new)
            return svg
        except Exception:  # notation is an extra: its failure must never fail the request
            log.warning("notation failed", exc_info=True)
            self._local.toolkit = None
            return None


def _colour(svg: str, timemap: list[dict], new: list[tuple[float, float]]) -> str:
    groups: dict[bool, list[str]] = {False: [], True: []}
    for event in timemap:
        ids = event.get("on", []) + event.get("restsOn", [])
        q = float(event.get("qstamp", 0))
        groups[any(a - 1e-6 <= q < b - 1e-6 for a, b in new)].extend(ids)
    rules = "".join(f"{','.join('#' + i for i in ids)}{{fill:{c};stroke:{c};color:{c}}}"
                    for ids, c in ((groups[False], FRAGMENT_COLOUR), (groups[True], NEW_COLOUR))
                    if ids and all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids))
    end = svg.find(">", svg.find("<svg"))
    return svg if end < 0 or not rules else f"{svg[:end + 1]}<style>{rules}</style>{svg[end + 1:]}"
