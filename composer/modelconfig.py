"""A model's description, without torch: its architecture and sizes (ModelConfig), the inputs it
reads and the order it concatenates them in (input_tables), and its parameter count. The torch
module (model.py), the fused sampler and the checkpoint loader all read this one description."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from .formfeatures import CLOSES_SIZE, FORM_KEYS, feature_sizes

ARCHS = ("dual", "joint")
CELL_GATES = {"gru": 3, "lstm": 4, "rnn": 1}  # gate blocks per layer: the recurrent cells
NOTE_KEYS = ("dur_in", "pitch_in", "pos_in", "pos_out")  # per step: the current note, positions
LABEL_KEYS = ("meter", "mode", "style")  # per tune
FORM_LEVELS = ("none", "position", "lookback", "cadence")


def form_keys(cfg: "ModelConfig") -> tuple[str, ...]:
    """The form inputs a model reads per step (see formfeatures), by its config's form level."""
    if cfg.form == "none":
        return ()
    return FORM_KEYS if reads_lookbacks(cfg) else FORM_KEYS[:6]


def reads_lookbacks(cfg: "ModelConfig") -> bool:
    """Whether the model reads the two look-backs (formfeatures), beside where it is."""
    return cfg.form in ("lookback", "cadence")


def reads_closes(cfg: "ModelConfig") -> bool:
    """Whether the melody network also reads what the next note closes (formfeatures)."""
    return cfg.form == "cadence" and cfg.arch == "dual"


def label_keys(cfg: "ModelConfig") -> tuple[str, ...]:
    """The per-tune labels a model reads: meter, mode, style, and the tune type with form."""
    return LABEL_KEYS + (("type",) if cfg.form != "none" else ())


def step_keys(cfg: "ModelConfig") -> tuple[str, ...]:
    """What rhythm_step reads: the note inputs, the form inputs and the labels."""
    return NOTE_KEYS + form_keys(cfg) + label_keys(cfg)


@dataclass(kw_only=True)
class ModelConfig:
    """Architecture and vocabulary sizes; everything needed to rebuild the module."""

    n_durations: int
    n_pitches: int
    n_positions: int
    n_meters: int
    n_modes: int
    n_styles: int
    n_types: int = 1
    form: str = "cadence"  # form inputs: none | position (where in the form) | lookback (and
    #                        the notes one phrase and one part back) | cadence (and, for the
    #                        melody network, what the next note closes); see formfeatures
    arch: str = "dual"
    cell: str = "gru"
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1
    dur_emb: int = 32
    pitch_emb: int = 48
    pos_emb: int = 16
    label_emb: int = 8  # meter, mode, style and type each
    form_emb: int = 8  # each bar-position input of the form
    back_pitch_emb: int = 24  # pitch one phrase or one part back

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; valid: {', '.join(ARCHS)}")
        if self.cell not in CELL_GATES:
            raise ValueError(f"unknown cell {self.cell!r}; valid: {', '.join(CELL_GATES)}")
        if self.form not in FORM_LEVELS:
            raise ValueError(f"unknown form level {self.form!r}; valid: {', '.join(FORM_LEVELS)}")
        if self.hidden < 1 or self.layers < 1 or not 0 <= self.dropout < 1:
            raise ValueError("hidden and layers must be >= 1 and dropout in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**{"form": "none", **d})  # configs from before form inputs have none


def input_tables(cfg: ModelConfig) -> list[tuple[str, str, int, int]]:
    """(batch key, embedding table, rows, width) of each per-step input, in the order the
    inputs are concatenated: the note inputs, the form inputs, then the per-tune labels.
    pos_in and pos_out share one table. The model, the fused sampler and count_params all
    read this one description."""
    sizes = feature_sizes(cfg.n_pitches, cfg.n_durations)
    note = [("dur_in", "dur", cfg.n_durations, cfg.dur_emb),
            ("pitch_in", "pitch", cfg.n_pitches, cfg.pitch_emb),
            ("pos_in", "pos", cfg.n_positions, cfg.pos_emb),
            ("pos_out", "pos", cfg.n_positions, cfg.pos_emb)]
    form = [(k, k, sizes[k], cfg.back_pitch_emb if k.endswith("_pitch")
             else cfg.dur_emb if k.endswith("_dur") else cfg.form_emb) for k in form_keys(cfg)]
    rows = {"meter": cfg.n_meters, "mode": cfg.n_modes, "style": cfg.n_styles, "type": cfg.n_types}
    # (nn.Module has a method named `type`, so that table is `tune_type`)
    return note + form + [(k, "tune_type" if k == "type" else k, rows[k], cfg.label_emb)
                          for k in label_keys(cfg)]


def melody_input_size(cfg: ModelConfig) -> int:
    """Width of the melody stack's input: the shared inputs, the next duration, what the next
    note closes (for a model that reads it), then the rhythm stack's top hidden state."""
    closes = cfg.form_emb if reads_closes(cfg) else 0
    return sum(width for *_, width in input_tables(cfg)) + cfg.dur_emb + closes + cfg.hidden


def weight_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every weight build_model(cfg) has, from the config alone (no
    tensors, so a checkpoint loader can check a file against its config before allocating)."""
    H, gates = cfg.hidden, CELL_GATES[cfg.cell] * cfg.hidden
    shapes = {f"inputs.{t}.weight": (rows, width) for _, t, rows, width in input_tables(cfg)}

    def stack(name: str, input_size: int) -> None:
        for k in range(cfg.layers):
            shapes.update({f"{name}.weight_ih_l{k}": (gates, input_size if k == 0 else H),
                           f"{name}.weight_hh_l{k}": (gates, H),
                           f"{name}.bias_ih_l{k}": (gates,), f"{name}.bias_hh_l{k}": (gates,)})

    stack("rhythm", sum(width for *_, width in input_tables(cfg)))
    if cfg.arch == "joint":
        classes = cfg.n_durations * cfg.n_pitches
        shapes.update({"head.weight": (classes, H), "head.bias": (classes,)})
        return shapes
    if reads_closes(cfg):
        shapes["closes.weight"] = (CLOSES_SIZE, cfg.form_emb)
    stack("melody", melody_input_size(cfg))
    shapes.update({"dur_head.weight": (cfg.n_durations, H), "dur_head.bias": (cfg.n_durations,),
                   "pitch_head.weight": (cfg.n_pitches, H), "pitch_head.bias": (cfg.n_pitches,)})
    return shapes


def count_params(cfg: ModelConfig) -> int:
    """Number of parameters build_model(cfg) has (see weight_shapes)."""
    return sum(math.prod(shape) for shape in weight_shapes(cfg).values())


def match_joint(cfg: ModelConfig, tolerance: float = 0.05) -> ModelConfig:
    """A joint config whose parameter count is closest to the dual model of `cfg` (same cell,
    layers and embeddings; only the hidden size differs). Raises ValueError if no hidden
    size comes within `tolerance`."""
    target = count_params(replace(cfg, arch="dual"))
    lo, hi = 1, 8 * cfg.hidden + 64
    while lo < hi:  # smallest hidden with at least the target count (count grows with hidden)
        mid = (lo + hi) // 2
        if count_params(replace(cfg, arch="joint", hidden=mid)) < target:
            lo = mid + 1
        else:
            hi = mid
    best = min((replace(cfg, arch="joint", hidden=h) for h in (max(1, lo - 1), lo)),
               key=lambda c: abs(count_params(c) - target))
    if abs(count_params(best) - target) > tolerance * target:
        raise ValueError(f"no joint hidden size matches {target} parameters within "
                         f"{tolerance:.0%}; the joint output layer alone is larger")
    return best


def vocab_sizes(vocab) -> dict[str, int]:
    """The ModelConfig fields a vocabulary (encoding.Vocab) sets: its table sizes."""
    return {"n_durations": vocab.n_durations, "n_pitches": vocab.n_pitches,
            "n_positions": vocab.n_positions, "n_meters": len(vocab.meters),
            "n_modes": len(vocab.modes), "n_styles": len(vocab.styles),
            "n_types": len(vocab.types)}
