"""What a model can be asked for: its labels (meters, modes, styles, tune types) with their
defaults and limits, and how a request's or a fragment's labels resolve to the model's."""

from __future__ import annotations

from .encoding import Vocab
from .formplan import DEFAULT_BARS, TypeForms
from .music import KEYS, Meter, MusicError
from .requests import DEFAULT_METER, LIMITS, ComposeRequest
from .tunetype import normalize_type


class ModelChoices:
    """The labels of one model, resolved case-insensitively, with errors that list the valid ones."""

    def __init__(self, vocab: Vocab, config: dict, label_keys: tuple[str, ...]):
        self.vocab = vocab
        self.label_keys = label_keys  # the order the model reads its labels in
        self.default_style = default_style(config, vocab)
        self.forms = TypeForms(list(vocab.types), (config.get("data") or {}).get("forms") or {})

    def options(self) -> dict:
        """Valid values, limits and defaults, for a CLI, an API or a form."""
        v = self.vocab
        d = ComposeRequest()
        meter = DEFAULT_METER if DEFAULT_METER in v.meters else v.meters[0]
        mode = d.mode if d.mode in v.modes else v.modes[0]
        s = d.sampling
        return {
            "meters": list(v.meters), "modes": list(v.modes), "keys": list(KEYS),
            "styles": list(v.styles),
            "limits": {k: {"min": a, "max": b} for k, (a, b) in LIMITS.items()},
            "types": list(v.types),
            "forms": {t: {k: u[k] for k in ("meter", "form", "part_bars", "pickup", "style") if k in u}
                      for t in v.types for u in [self.forms.usual(t)]},
            "defaults": {"bars": DEFAULT_BARS, "meter": meter, "key": d.key, "mode": mode,
                         "style": self.default_style, "tempo": d.tempo,
                         "temperature": s.temperature, "top_p": s.top_p, "best_of": s.best_of,
                         "low": s.low, "high": s.high},
        }

    def label(self, kind: str, value: str) -> str:
        values = getattr(self.vocab, kind + "s")
        for v in values:
            if v.lower() == str(value).strip().lower():
                return v
        raise MusicError(f"unknown {kind} {value!r}; valid {kind}s: {', '.join(values)}",
                         field=kind)

    def meter(self, text: str) -> Meter:
        try:
            meter = Meter.parse(str(text))
        except MusicError:
            meter = None
        if meter is None or str(meter) not in self.vocab.meters:
            raise MusicError(f"unknown meter {text!r}; valid meters: "
                             f"{', '.join(self.vocab.meters)}", field="meter")
        return meter

    def fragment_mode(self, mode: str) -> str:
        """The model's mode label closest to a fragment's (estimated) mode."""
        modes = self.vocab.modes
        if mode in modes:
            return mode
        major_like = mode in ("major", "lydian", "mixolydian")
        family = (("major", "mixolydian", "lydian", "dorian", "minor") if major_like
                  else ("minor", "dorian", "phrygian", "major"))
        return next((m for m in family if m in modes), modes[0])

    def style(self, style: str | None) -> str:
        return self.default_style if style in (None, "") else self.label("style", style)

    def type_style(self, tune_type: str) -> str | None:
        """The collection most tunes of this type come from, if the model knows it."""
        style = self.forms.usual(tune_type).get("style")
        return style if style in self.vocab.styles else None

    def ids(self, meter: Meter, mode: str, style: str, tune_type: str) -> tuple[int, ...]:
        """Label ids in the order the model reads them (meter, mode, style[, type])."""
        v = self.vocab
        ids = {"meter": v.label_id("meter", str(meter)), "mode": v.label_id("mode", mode),
               "style": v.label_id("style", style), "type": v.label_id("type", tune_type)}
        return tuple(ids[k] for k in self.label_keys)

    def tune_type(self, given: str | None, written: str, meter: Meter) -> str:
        """The type asked for, else the one a file names (R:) if the model knows it, else the
        usual type of the meter."""
        if given:
            return self.forms.check(given)
        named = normalize_type(written, str(meter)) if written else ""
        return named if named in self.vocab.types else self.forms.type_for_meter(str(meter))


def default_style(config: dict, vocab: Vocab) -> str:
    """The model's most common training style if the checkpoint records counts, else the first."""
    for key in ("style_counts", "styles"):
        counts = config.get(key) or (config.get("data") or {}).get(key)
        if isinstance(counts, dict):
            known = {k: v for k, v in counts.items() if k in vocab.styles}
            if known:
                return max(known, key=lambda k: (known[k], k))
    return vocab.styles[0]
