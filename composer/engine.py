"""The dual GRU model run in numpy: sampling, continuing and scoring without torch.

The torch module (model.py) is the definition and what training uses; this engine reads the
same checkpoint (safetensors, as numpy arrays) and computes the same step-by-step arithmetic
in float32, laid out for one note at a time:
- every input of a step is an embedding, and W_ih @ [e1; e2; ...] = sum of (W_ih block @ e_k),
  so each embedding table is multiplied by its block of the first layer's W_ih once, at load
  (b_ih folds into the first table), and a step's first-layer input projection is a sum of
  table rows. The blocks follow the model's own description of its inputs
  (`modelconfig.input_tables`, then the melody network's next duration, what that note
  closes, and the rhythm network's top state: `modelconfig.melody_input_size`);
- each layer's new hidden state is multiplied once by every matrix that reads it, side by
  side: the next layer's W_ih, its own W_hh for the next step, and at the top the output head
  (and, for the rhythm network, the melody network's block for the rhythm state);
- the r and z gate columns come halved, so sigmoid(x) = (tanh(x / 2) + 1) / 2 is one tanh.

`supports(cfg)` says which models it runs; the others take the torch path (torchnet.py).
"""

from __future__ import annotations

import sys

import numpy as np

from . import cancel
from .modelconfig import ModelConfig, input_tables, label_keys, reads_closes
from .modelfiles import CheckpointError, ModelWeights
from .music import MusicError

NOTE_INPUTS = 4  # dur_in, pitch_in, pos_in, pos_out: the first inputs of every step


def set_threads(threads: int) -> None:
    """Threads for the matrix products (BLAS, and torch where it is loaded). Sampling is a
    chain of small steps, so one thread per process is fastest under load."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(max(1, threads))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, threads))


def supports(cfg: ModelConfig) -> str | None:
    """None if the engine runs this model, else why not (in words)."""
    if cfg.arch != "dual":
        return f"the numpy engine runs dual models, not {cfg.arch!r} ones"
    if cfg.cell != "gru":
        return f"the numpy engine runs GRU cells, not {cfg.cell!r}"
    return None


class _Stack:
    """One network's GRU layers with the matrices that read each layer's state."""

    def __init__(self, w: dict[str, np.ndarray], name: str, layers: int, hidden: int,
                 top: list[tuple[np.ndarray, np.ndarray]]):
        H = hidden
        half = np.ones(3 * H, np.float32)
        half[:2 * H] = 0.5  # r, z columns: sigmoid via tanh of half the argument
        self.half = half
        self.mats, self.biases, self.gh0 = [], [], []
        for k in range(layers):
            w_hh, b_hh = w[f"{name}.weight_hh_l{k}"], w[f"{name}.bias_hh_l{k}"]
            parts = [(w_hh.T * half, b_hh * half)]  # this layer's own W_hh, for the next step
            if k + 1 < layers:
                parts.insert(0, (w[f"{name}.weight_ih_l{k + 1}"].T * half,
                                 w[f"{name}.bias_ih_l{k + 1}"] * half))
            else:
                parts += top
            self.mats.append(np.ascontiguousarray(np.concatenate([m for m, _ in parts], 1)))
            self.biases.append(np.concatenate([b for _, b in parts]).astype(np.float32))
            self.gh0.append(b_hh * half)  # what W_hh h + b_hh is at h = 0
        # column of the first output after this layer's own W_hh block, per layer
        self.own = [slice(3 * H, 6 * H) if k + 1 < layers else slice(0, 3 * H)
                    for k in range(layers)]
        self.hidden, self.layers = H, layers

    def run(self, gi: np.ndarray, h: list[np.ndarray], gh: list[np.ndarray]) -> np.ndarray:
        """All layers for one step, updating h and gh in place; gi: the first layer's input
        projection [rows, 3H]. Returns the top layer's output row block (gh_top | heads)."""
        H = self.hidden
        for k in range(self.layers):
            hk, ghk = h[k], gh[k]
            rz = gi[:, :2 * H] + ghk[:, :2 * H]
            np.tanh(rz, out=rz)
            rz += 1.0
            rz *= 0.5
            n = ghk[:, 2 * H:] * rz[:, :H]
            n += gi[:, 2 * H:]
            np.tanh(n, out=n)
            hk -= n
            hk *= rz[:, H:]
            hk += n
            out = hk @ self.mats[k]
            out += self.biases[k]
            gh[k] = out[:, self.own[k]]
            if k + 1 < self.layers:
                gi = out[:, :3 * H]
        return out


class Engine:
    """The read-only, precomputed form of a dual GRU checkpoint; `batch()` makes the per-call
    state."""

    def __init__(self, weights: ModelWeights):
        cfg, w = weights.cfg, weights.tensors
        problem = supports(cfg)
        if problem:
            raise ValueError(problem)
        self.cfg = cfg
        self.label_keys = label_keys(cfg)
        H = cfg.hidden
        self.hidden, self.layers = H, cfg.layers
        half = np.ones(3 * H, np.float32)
        half[:2 * H] = 0.5
        tables = input_tables(cfg)
        keys = [k for k, *_ in tables]
        self.labels = [i for i, k in enumerate(keys) if k in self.label_keys]
        assert self.labels == list(range(len(keys) - len(self.labels), len(keys))), \
            "the label inputs come last (modelconfig.input_tables)"
        self.form = slice(NOTE_INPUTS, NOTE_INPUTS + len(keys) - NOTE_INPUTS - len(self.labels))
        r_ih, m_ih = w["rhythm.weight_ih_l0"], w["melody.weight_ih_l0"]
        r_parts, m_parts, col = [], [], 0
        for i, (_, table, _, width) in enumerate(tables):
            emb = w[f"inputs.{table}.weight"]
            r_parts.append(emb @ r_ih[:, col:col + width].T)
            m_parts.append(emb @ m_ih[:, col:col + width].T)
            col += width
        r_parts[0] = r_parts[0] + w["rhythm.bias_ih_l0"]
        m_parts[0] = m_parts[0] + w["melody.bias_ih_l0"]
        m_parts.append(w["inputs.dur.weight"] @ m_ih[:, col:col + cfg.dur_emb].T)  # next duration
        col += cfg.dur_emb
        if reads_closes(cfg):
            m_parts.append(w["closes.weight"] @ m_ih[:, col:col + cfg.form_emb].T)
            col += cfg.form_emb
        m_from_r = m_ih[:, col:col + H]  # the rhythm network's top state
        self.offsets = np.cumsum([0] + [len(t) for t in m_parts[:-1]]).astype(np.int64)
        self.n_rhythm = len(r_parts)  # the melody network reads these and 1 or 2 more
        self.r_table = np.ascontiguousarray(np.concatenate(r_parts) * half, np.float32)
        self.m_table = np.ascontiguousarray(np.concatenate(m_parts) * half, np.float32)
        nd, npi = cfg.n_durations, cfg.n_pitches
        self.rhythm = _Stack(w, "rhythm", cfg.layers, H, [
            (w["dur_head.weight"].T, w["dur_head.bias"]),
            ((m_from_r * half[:, None]).T, np.zeros(3 * H, np.float32))])
        self.melody = _Stack(w, "melody", cfg.layers, H, [
            (w["pitch_head.weight"].T, w["pitch_head.bias"])])
        self.dur_cols = slice(3 * H, 3 * H + nd)
        self.m_cols = slice(3 * H + nd, 6 * H + nd)
        self.pitch_cols = slice(3 * H, 3 * H + npi)

    def batch(self, rows: int, labels: np.ndarray) -> "EngineBatch":
        """Fresh state for `rows` sequences; labels [rows, n] in the model's label order."""
        return EngineBatch(self, rows, np.asarray(labels, np.int64))

    def read(self, steps: dict[str, np.ndarray], labels: tuple[int, ...], n: int,
             net: "EngineBatch | None" = None, first: int = 0
             ) -> tuple[np.ndarray, np.ndarray, "EngineBatch"]:
        """Teacher-forced pass over the first `n` steps of one tune (steps as encoding.streams
        and formfeatures.form_streams give them), or with `net` (a one-row batch that has read
        the first `first`) over the steps after those: the next-duration logits
        [n - first, n_durations], the next-pitch logits [n - first, n_pitches], and the
        one-row batch after those steps."""
        net = net or self.batch(1, np.array([labels], np.int64))
        dur, pitch = self._read(net, steps, n, first)
        return dur[:, 0], pitch[:, 0], net

    def read_rows(self, steps: dict[str, np.ndarray], label_rows: list[tuple[int, ...]], n: int
                  ) -> tuple[np.ndarray, np.ndarray]:
        """read() of the same steps under each of several labellings, in one batch: logits
        [rows, n, n_durations] and [rows, n, n_pitches]."""
        dur, pitch = self._read(self.batch(len(label_rows), np.array(label_rows, np.int64)),
                                steps, n, 0)
        return dur.transpose(1, 0, 2), pitch.transpose(1, 0, 2)

    def _read(self, net: "EngineBatch", steps: dict[str, np.ndarray], n: int, first: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """Steps first..n-1 read by every row of `net`: logits [n - first, rows, ...]."""
        cfg = self.cfg
        keys = [k for k, *_ in input_tables(cfg)][self.form]
        form = np.stack([steps[k][:n] for k in keys], 1) if keys else None
        closes = steps["closes"][:n] if reads_closes(cfg) else None
        dur = np.empty((n - first, net.rows, cfg.n_durations), np.float32)
        pitch = np.empty((n - first, net.rows, cfg.n_pitches), np.float32)
        for t in range(first, n):
            if t % 64 == 0:
                cancel.check()  # a long upload's scoring stops when its request is cancelled
            dur[t - first] = net.rhythm(int(steps["dur_in"][t]), int(steps["pitch_in"][t]),
                                        int(steps["pos_in"][t]), int(steps["pos_out"][t]),
                                        None if form is None else form[t:t + 1])
            pitch[t - first] = net.melody(int(steps["dur_out"][t]),
                                          None if closes is None else int(closes[t]))
        return dur, pitch


class EngineBatch:
    """Recurrent state of one batch; not shared between threads."""

    def __init__(self, engine: Engine, rows: int, labels: np.ndarray):
        self.engine, self.rows, self.labels = engine, rows, labels
        e = engine
        H = e.hidden
        off = e.offsets
        # the labels are the same at every step: their table rows are summed once, here
        label_rows = labels + off[e.labels][None, :]
        self.r_base = e.r_table[label_rows].sum(1)
        self.m_base = e.m_table[label_rows].sum(1)
        n_step = e.labels[0] if e.labels else e.n_rhythm  # the inputs read at every step
        self.r_idx = np.zeros((rows, n_step), np.int64)
        self.m_idx = np.zeros((rows, n_step + len(off) - e.n_rhythm), np.int64)
        self.form_off = off[e.form]
        self.next_col = n_step
        self.off_next = int(off[e.n_rhythm])
        self.off_closes = int(off[e.n_rhythm + 1]) if len(off) > e.n_rhythm + 1 else 0
        zeros = lambda: [np.zeros((rows, H), np.float32) for _ in range(e.layers)]  # noqa: E731
        self.h_r, self.h_m = zeros(), zeros()
        self.gh_r = [np.tile(g, (rows, 1)) for g in e.rhythm.gh0]
        self.gh_m = [np.tile(g, (rows, 1)) for g in e.melody.gh0]
        self.m_from_r = np.zeros((rows, 3 * H), np.float32)

    def select(self, rows: np.ndarray) -> "EngineBatch":
        """A batch of only the given rows, their state included (to drop finished rows, or to
        copy one primed row into many)."""
        rows = np.asarray(rows, np.int64)
        new = EngineBatch(self.engine, len(rows), self.labels[rows])
        for name in ("h_r", "h_m", "gh_r", "gh_m"):
            setattr(new, name, [x[rows] for x in getattr(self, name)])
        new.m_from_r = self.m_from_r[rows]
        return new

    def rhythm(self, dur_in, pitch_in, pos_in, pos_out, form=None) -> np.ndarray:
        """One rhythm step (ints for one row, or int arrays [rows]; form: the form inputs
        [rows, n_form], or None for a model without them); returns the next-duration logits
        [rows, n_durations]."""
        e, off = self.engine, self.engine.offsets
        r, m = self.r_idx, self.m_idx
        r[:, 0] = m[:, 0] = dur_in  # the melody step of the same note reads the same inputs
        r[:, 1] = m[:, 1] = pitch_in + off[1]
        r[:, 2] = m[:, 2] = pos_in + off[2]
        r[:, 3] = m[:, 3] = pos_out + off[3]
        if form is not None:
            r[:, e.form] = m[:, e.form] = form + self.form_off
        gi = e.r_table[r].sum(1)
        gi += self.r_base
        out = e.rhythm.run(gi, self.h_r, self.gh_r)
        self.m_from_r = out[:, e.m_cols]
        return out[:, e.dur_cols]

    def melody(self, dur_out, closes=None) -> np.ndarray:
        """The melody step after rhythm() on the same inputs, given the chosen next durations
        (and what those notes close, for a model that reads it); returns the next-pitch logits
        [rows, n_pitches]."""
        e = self.engine
        m = self.m_idx
        m[:, self.next_col] = dur_out + self.off_next
        if closes is not None:
            m[:, self.next_col + 1] = closes + self.off_closes
        gi = e.m_table[m].sum(1)
        gi += self.m_base
        gi += self.m_from_r
        out = e.melody.run(gi, self.h_m, self.gh_m)
        return out[:, e.pitch_cols]


ENGINES = ("auto", "numpy", "torch")  # what may run a model (see network_for)


def network_for(loaded, engine: str = "auto"):
    """The network the sampler steps: the numpy engine, or the torch model (torchnet)."""
    if engine not in ENGINES:
        raise MusicError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}",
                         field="engine")
    problem = supports(loaded.cfg)
    if isinstance(loaded, ModelWeights) and engine != "torch" and problem is None:
        return Engine(loaded)
    if engine == "numpy":
        raise CheckpointError(problem or "the numpy engine reads a model folder, not a torch model")
    try:
        from .torchnet import TorchNet
    except ImportError:
        raise CheckpointError(f"{problem or 'the torch engine was asked for'}; that needs "
                              "torch: pip install 'composer[train]'") from None
    if isinstance(loaded, ModelWeights):
        from .checkpoint import model_from_weights

        loaded = model_from_weights(loaded)
    return TorchNet(loaded.model)
