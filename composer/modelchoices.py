"""What a model can be asked for: its labels (meters, modes, styles, tune types) with their
defaults and limits, and how a request's or a fragment's labels resolve to the model's."""

from __future__ import annotations

from dataclasses import replace

from .encoding import Vocab
from .formplan import DEFAULT_BARS, TypeForms
from .modelfiles import CheckpointError
from .music import KEYS, Meter, MusicError, pitch_name
from .requests import DEFAULT_METER, DEFAULT_TEMPERATURE, LIMITS, ComposeRequest, SamplingOptions
from .tunetype import normalize_type


# Human names of the style ids of the collections composer is trained on (the id stays the
# label a request names; the name is what a page or a title shows).
STYLE_NAMES = {
    "oneills1850": "O'Neill's Music of Ireland (1850)",
    "ryansMammoth": "Ryan's Mammoth Collection (1883)",
    "airdsAirs": "Aird's Selection of Scotch, English, Irish and Foreign Airs (1782-1797)",
    "essenFolksong": "the Essen folksong collection",
    "miscFolk": "music21's miscellaneous folk tunes",
}


def style_name(style: str) -> str:
    """What a style label is called: its collection's name, else the label itself."""
    return STYLE_NAMES.get(style, style)


class ModelChoices:
    """The labels of one model, resolved case-insensitively, with errors that list the valid ones."""

    def __init__(self, vocab: Vocab, config: dict, label_keys: tuple[str, ...]):
        self.vocab = vocab
        self.label_keys = label_keys  # the order the model reads its labels in
        self.default_style = default_style(config, vocab)
        self.forms = TypeForms(list(vocab.types), (config.get("data") or {}).get("forms") or {})
        self.temperatures = type_temperatures(config, vocab)

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
            "style_names": {s: style_name(s) for s in v.styles},
            "limits": {k: {"min": a, "max": b} for k, (a, b) in LIMITS.items()},
            "types": list(v.types),
            "forms": {t: {**{k: u[k] for k in ("meter", "form", "part_bars", "pickup", "style")
                             if k in u}, "temperature": self.temperature(None, t)}
                      for t in v.types for u in [self.forms.usual(t)]},
            "defaults": {"bars": DEFAULT_BARS, "meter": meter, "key": d.key, "mode": mode,
                         "style": self.default_style, "tempo": d.tempo,
                         "temperature": DEFAULT_TEMPERATURE, "top_p": s.top_p,
                         "best_of": s.best_of,
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
            raise MusicError(f"unknown meter {text!r}: this model knows the meters "
                             f"{', '.join(self.vocab.meters)} (those its corpus holds enough "
                             "tunes in)", field="meter")
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

    def temperature(self, asked: float | None, tune_type: str) -> float:
        """The temperature to draw a tune of this type with: the one asked, else the model's
        for the type, else DEFAULT_TEMPERATURE."""
        if asked is not None:
            return float(asked)
        return float(self.temperatures.get(tune_type, DEFAULT_TEMPERATURE))

    def sampling(self, opts: SamplingOptions, tune_type: str) -> SamplingOptions:
        """`opts` with the temperature a tune of this type is drawn at (see temperature)."""
        return replace(opts, temperature=self.temperature(opts.temperature, tune_type))

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


def type_temperatures(config: dict, vocab: Vocab) -> dict[str, float]:
    """Each tune type's sampling temperature, as `composer calibrate` chose it (none: every
    type draws at DEFAULT_TEMPERATURE)."""
    sampling = config.get("sampling", {})
    given = sampling.get("temperature", {}) if isinstance(sampling, dict) else None
    t0, t1 = LIMITS["temperature"]
    if not isinstance(given, dict) or not all(k in vocab.types and type(t) in (int, float)
                                              and t0 < t <= t1 for k, t in given.items()):
        raise CheckpointError("the model's config.json has an invalid sampling section: "
                              "temperatures must be numbers in "
                              f"({t0:g}, {t1:g}] for the model's tune types")
    return {k: float(t) for k, t in given.items()}


MAX_TITLE = 120  # characters of a title given with the request


def tune_title(tune_type: str, key: str, mode: str) -> str:
    """A title as a musician would write it: "Reel in D", "Jig in E minor", "Tune in G dorian"."""
    kind = tune_type.capitalize() if tune_type not in ("", "other") else "Tune"
    return f"{kind} in {key}" + ("" if mode == "major" else f" {mode}")


def model_facts(name: str, cfg, config: dict, choices: ModelChoices) -> dict:
    """What a model is and what it can be asked for (`composer info`): its network, size,
    labels, each type's sampling temperature, keys, pitch range and validation figure."""
    v, o = choices.vocab, choices.options()
    metrics = config.get("metrics") or {}
    low, high = v.pitch_low, v.pitch_high
    facts = {
        "model": name,
        "network": f"{cfg.arch}, {cfg.cell.upper()} {cfg.layers} x {cfg.hidden} per network, "
                   f"form inputs {cfg.form}",
        "parameters": f"{config.get('params', 0):,}",
        "styles": [f"{s} ({STYLE_NAMES[s]})" if s in STYLE_NAMES else s for s in v.styles],
        "default style": choices.default_style,
        "tune types": list(v.types),
        "temperatures": [f"{t} {choices.temperature(None, t):g}" for t in v.types],
        "meters": list(v.meters), "modes": list(v.modes),
        "keys": o["keys"],
        "pitch range": f"{pitch_name(low)}..{pitch_name(high)} ({low}..{high}) at tonic C, "
                       "moved to the key asked for",
        "bars": f"{o['limits']['bars']['min']}..{o['limits']['bars']['max']}",
    }
    if "valid_total" in metrics:
        facts["validation"] = (f"{metrics['valid_total']:.3f} bits/note (rhythm "
                               f"{metrics['valid_rhythm']:.3f}, pitch {metrics['valid_pitch']:.3f}"
                               f"), epoch {metrics.get('epoch')}")
    return facts

