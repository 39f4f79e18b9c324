"""Fast one-step-at-a-time inference for the dual GRU model: fused cells on preallocated tensors.

Sampling runs the two networks one note at a time, so per-step overhead, not arithmetic, is
what costs. This module reads a trained `model.DualModel` (GRU cells) once and then:
- turns the first layers' input projections into table lookups: every input of a step is an
  embedding, and W_ih @ [e1; e2; ...] = sum of (W_ih block @ e_k), so each embedding table is
  multiplied by its block of W_ih once, at load (b_ih folds into the meter rows), and a
  step's whole first-layer input projection is one embedding-bag sum over those tables. The
  blocks come from the model's own description of its inputs (`model.input_tables`): the
  note inputs, the form inputs, the labels, in that order;
- multiplies each cell's new hidden state once by every matrix that reads it, stacked side by
  side: the next layer's W_ih, its own W_hh for the next step, and at the top of the rhythm
  stack the duration head and the melody stack's input block for the rhythm state; the stack
  comes in two halves (one torch.bmm) so that two threads can share the product;
- keeps each hidden state as g = (h + 1) / 2, which turns the GRU's tanh into a sigmoid
  (far cheaper on CPU) with no extra operation: the factors fold into the weights;
- writes every result into buffers allocated per batch, so a step allocates nothing but one
  embedding-bag result per network.

The arithmetic is the model's own (same weights, float32); the results match
`DualModel.rhythm_step` / `melody_step` to float rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .model import DualModel, ModelState


def supports(model: nn.Module) -> bool:
    """Whether `model` is a dual model of GRU cells, the shape this fast path knows."""
    return isinstance(model, DualModel) and isinstance(model.rhythm, nn.GRU) and isinstance(
        model.melody, nn.GRU) and not model.rhythm.bidirectional and not model.melody.bidirectional


def _gru_weights(rnn: nn.GRU, layer: int) -> tuple[torch.Tensor, ...]:
    w_ih = getattr(rnn, f"weight_ih_l{layer}").detach().float()
    w_hh = getattr(rnn, f"weight_hh_l{layer}").detach().float()
    zeros = torch.zeros(w_ih.shape[0])
    b_ih = getattr(rnn, f"bias_ih_l{layer}", None)
    b_hh = getattr(rnn, f"bias_hh_l{layer}", None)
    b_ih = zeros if b_ih is None else b_ih.detach().float()
    b_hh = zeros if b_hh is None else b_hh.detach().float()
    return w_ih, w_hh, b_ih, b_hh


def _stack(halves: tuple[list, list], hidden: int) -> tuple[torch.Tensor, dict]:
    """Stack the matrices that read one cell's state into W [2, H + 1, width]: two halves that
    two threads can multiply at once (torch.bmm), the bias as row H (the input ends in a 1).

    Blocks are (name, W [cols, H] as in nn.Linear, b [cols], is an n gate). The state is kept
    as g = (h + 1) / 2, so h @ W.T + b = g @ 2 W.T + (b - W.sum(1)); n-gate blocks are doubled
    too. Returns the stacked weights and {name: (half, first column, width)}.
    """
    width = max(sum(len(b) for _, _, b, _ in half) for half in halves)
    stacked = torch.zeros(2, hidden + 1, width)
    place = {}
    for i, half in enumerate(halves):
        col = 0
        for name, w, b, n_gate in half:
            if n_gate:
                w, b = 2 * w, 2 * b
            n = len(b)
            stacked[i, :hidden, col:col + n] = 2 * w.T
            stacked[i, hidden, col:col + n] = b - w.sum(1)
            place[name] = (i, col, n)
            col += n
    return stacked, place


class FusedDual:
    """The read-only, precomputed form of a DualModel; `batch()` makes the per-call buffers."""

    def __init__(self, model: DualModel):
        cfg = model.cfg
        inp = model.inputs
        H, L = cfg.hidden, cfg.layers
        self.hidden, self.layers = H, L
        self.n_durations, self.n_pitches = cfg.n_durations, cfg.n_pitches
        with torch.no_grad():
            slots = inp.slots()  # the first layers' W_ih column blocks, in input order
            widths = [emb.embedding_dim for _, emb in slots]
            bounds = np.concatenate([[0], np.cumsum(widths)]).tolist()
            blocks = lambda w: [w[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]  # noqa: E731

            r = [_gru_weights(model.rhythm, k) for k in range(L)]
            m = [_gru_weights(model.melody, k) for k in range(L)]
            rb, mb = blocks(r[0][0]), blocks(m[0][0])
            d_in = inp.dim
            m_dur_out = m[0][0][:, d_in:d_in + cfg.dur_emb]
            # what the next note closes, for a model that reads it, comes next
            closes = getattr(model, "closes", None)
            after = d_in + cfg.dur_emb + (closes.embedding_dim if closes is not None else 0)
            m_closes = m[0][0][:, d_in + cfg.dur_emb:after]
            m_rhythm = m[0][0][:, after:]
            keys = [k for k, _ in slots]
            self.labels = [i for i, k in enumerate(keys) if k in inp.label_keys]
            self.n_form = len(keys) - 4 - len(self.labels)  # note inputs, form inputs, labels
            # one lookup table [rows, 3H] per network: a segment per input in slot order (the
            # first label's rows carry b_ih), and the melody's ends with a dur_out segment
            bias = lambda i, b_ih: b_ih if i == self.labels[0] else 0  # noqa: E731
            r_parts = [emb.weight.float() @ rb[i].T + bias(i, r[0][2]) for i, (_, emb) in enumerate(slots)]
            m_parts = [emb.weight.float() @ mb[i].T + bias(i, m[0][2]) for i, (_, emb) in enumerate(slots)]
            m_parts.append(inp.dur.weight.float() @ m_dur_out.T)
            self.n_next = 1  # melody-only inputs after the shared ones: dur_out (and closes)
            if closes is not None:
                m_parts.append(closes.weight.float() @ m_closes.T)
                self.n_next = 2
            self.r_table, self.m_table = torch.cat(r_parts), torch.cat(m_parts)
            self.offsets = np.cumsum([0] + [len(t) for t in m_parts[:-1]]).astype(np.int64)
            heads = (model.dur_head.weight.float(), model.dur_head.bias.float(),
                     model.pitch_head.weight.float(), model.pitch_head.bias.float())
            self.r_table[:, 2 * H:] *= 2  # n-gate columns doubled, see FusedBatch._run
            self.m_table[:, 2 * H:] *= 2
            # the melody stack's input block for the rhythm state, its n-gate rows doubled
            m_rhythm_x2n = torch.cat([m_rhythm[:2 * H], 2 * m_rhythm[2 * H:]])
            self.r_cells, self.m_cells = [], []
            for k in range(L):
                for stack, cells, top in (
                        (r, self.r_cells, ([("m", m_rhythm_x2n, torch.zeros(3 * H), False)],
                                           [("dur", heads[0], heads[1], False)])),
                        (m, self.m_cells, ([], [("pitch", heads[2], heads[3], False)]))):
                    w_hh, b_hh = stack[k][1], stack[k][3]
                    own = [("gh_rz", w_hh[:2 * H], b_hh[:2 * H], False),
                           ("gh_n", w_hh[2 * H:], b_hh[2 * H:], True)]
                    if k + 1 < L:  # the next layer's input projection, then this layer's own
                        w_ih, b_ih = stack[k + 1][0], stack[k + 1][2]
                        halves = ([("gi_rz", w_ih[:2 * H], b_ih[:2 * H], False),
                                   ("gi_n", w_ih[2 * H:], b_ih[2 * H:], True)], own)
                    elif top[0]:  # rhythm top: the melody stack's rhythm input | own + head
                        halves = (top[0], own + top[1])
                    else:  # melody top: own r,z | own n + head
                        halves = (own[:1], own[1:] + top[1])
                    cells.append(_stack(halves, H))

    def batch(self, rows: int, labels: np.ndarray) -> "FusedBatch":
        """Fresh state and buffers for `rows` sequences; labels: [rows, n] in the model's
        label order (meter, mode, style, and type for a model with form inputs)."""
        return FusedBatch(self, rows, labels)


class FusedBatch:
    """Recurrent state and work buffers of one batch; not shared between threads."""

    def __init__(self, net: FusedDual, rows: int, labels: np.ndarray, refresh: bool = True):
        self.net = net
        H, L = net.hidden, net.layers
        self.rows = rows
        self.labels = labels
        off = net.offsets
        self.off = off
        n = len(off) - net.n_next  # the rhythm network's inputs; the melody network reads more
        m = n + net.n_next
        self.r_idx = torch.zeros(rows, n, dtype=torch.long)
        self.m_idx = torch.zeros(rows, m, dtype=torch.long)
        self.r_idx_np, self.m_idx_np = self.r_idx.numpy(), self.m_idx.numpy()
        # torch.embedding_bag (the op under F.embedding_bag) on flat indices with fixed offsets
        self.r_flat, self.m_flat = self.r_idx.view(-1), self.m_idx.view(-1)
        self.r_flat_np, self.m_flat_np = self.r_flat.numpy(), self.m_flat.numpy()
        self.off1, self.off2, self.off3, self.off_dur_out = (int(off[i]) for i in (1, 2, 3, n))
        self.off_closes = int(off[n + 1]) if net.n_next > 1 else 0
        self.dur_col = n - m  # from the end of a melody row: dur_out, then closes
        self.form_cols = slice(4, 4 + net.n_form)
        self.form_off = off[self.form_cols]
        self.r_offsets = torch.arange(0, rows * n, n)
        self.m_offsets = torch.arange(0, rows * m, m)
        for k, col in enumerate(net.labels):
            self.r_idx_np[:, col] = self.m_idx_np[:, col] = labels[:, k] + off[col]
        # per cell: the input [2, rows, H + 1] = (g, 1) twice (one copy per half) and the output
        # [2, rows, width]; g = (h + 1) / 2 starts at 0.5 (h = 0)
        cells = net.r_cells + net.m_cells
        self.x = [torch.ones(2, rows, H + 1) for _ in cells]
        self.out = [torch.empty(2, rows, w.shape[2]) for w, _ in cells]
        for x in self.x:
            x[:, :, :H] = 0.5
        self.rz = torch.empty(rows, 2 * H)
        self.s = torch.empty(rows, H)
        self.gi_m0 = torch.empty(rows, 3 * H)
        view = lambda k, name: self.out[k][place(k)[name][0], :, place(k)[name][1]:  # noqa: E731
                                            place(k)[name][1] + place(k)[name][2]]
        place = lambda k: cells[k][1]  # noqa: E731
        self.steps: list[list] = [[], []]  # rhythm cells, melody cells
        for net_i in (0, 1):
            for k in range(L):
                c = net_i * L + k
                if k:
                    gi = (view(c - 1, "gi_rz"), view(c - 1, "gi_n"))
                elif net_i:
                    gi = (self.gi_m0[:, :2 * H], self.gi_m0[:, 2 * H:])
                else:
                    gi = None  # the embedding bag, new each step
                self.steps[net_i].append((gi, (view(c, "gh_rz"), view(c, "gh_n")),
                                          self.x[c][0, :, :H], self.x[c], cells[c][0], self.out[c]))
        self.m_from_r = view(L - 1, "m")
        self.dur_logits_np = view(L - 1, "dur").numpy()
        self.pitch_logits_np = view(2 * L - 1, "pitch").numpy()
        self.rz_r, self.rz_z = self.rz[:, :H], self.rz[:, H:]
        if refresh:
            self._refresh()

    def select(self, rows: np.ndarray) -> "FusedBatch":
        """A batch of only the given rows (their state included), e.g. to drop finished ones."""
        new = FusedBatch(self.net, len(rows), self.labels[rows], refresh=False)
        index = torch.from_numpy(np.asarray(rows, np.int64))
        for mine, theirs in zip(self.x + self.out, new.x + new.out):
            torch.index_select(mine, 1, index, out=theirs)
        return new

    def _refresh(self) -> None:
        """Recompute every cell's outputs (W_hh h + b_hh above all) from the states."""
        for x, (w, _), out in zip(self.x, self.net.r_cells + self.net.m_cells, self.out):
            x[1].copy_(x[0])
            torch.bmm(x, w, out=out)

    def load_state(self, state: ModelState) -> None:
        """Take over the state that DualModel.prime returned."""
        H, L = self.net.hidden, self.net.layers
        for k in range(L):
            self.x[k][0, :, :H] = (state.rhythm[k] + 1) * 0.5
            self.x[L + k][0, :, :H] = (state.melody[k] + 1) * 0.5
        self._refresh()

    def _run(self, steps: list, gi0: tuple | None) -> None:
        """Every layer of one network, in place: r,z = sigmoid(gi + gh); s = sigmoid(2 gi_n +
        r * 2 gh_n) (the n-gate columns come doubled, and tanh(a) = 2 sigmoid(2a) - 1);
        g = s + z * (g - s), which is h = n + z * (h - n) for g = (h + 1) / 2; then
        (g, 1) @ [consumers | W_hh; biases]. sigmoid is much cheaper than tanh on CPU."""
        rz, s, rz_r, rz_z = self.rz, self.s, self.rz_r, self.rz_z
        for gi, gh, g, x, w, out in steps:
            gi_rz, gi_n = gi or gi0
            torch.add(gi_rz, gh[0], out=rz)
            rz.sigmoid_()
            torch.addcmul(gi_n, rz_r, gh[1], out=s)
            s.sigmoid_()
            torch.lerp(s, g, rz_z, out=g)
            x[1].copy_(x[0])
            torch.bmm(x, w, out=out)

    def rhythm(self, dur_in, pitch_in, pos_in, pos_out, form=None) -> np.ndarray:
        """One rhythm step (ints for one row, or int arrays [rows]; form: the form inputs
        [rows, n_form], or None for a model without them); returns the next-duration logits
        [rows, n_durations] (a view that the next rhythm() call overwrites)."""
        off = self.off
        if type(dur_in) is int:  # one row, plain ints: the latency-critical case
            r, m = self.r_flat_np, self.m_flat_np
            r[0] = m[0] = dur_in
            r[1] = m[1] = pitch_in + self.off1
            r[2] = m[2] = pos_in + self.off2
            r[3] = m[3] = pos_out + self.off3
            if form is not None:
                r[self.form_cols] = m[self.form_cols] = form[0] + self.form_off
        else:  # the melody step of the same note reads the same inputs
            r, m = self.r_idx_np, self.m_idx_np
            r[:, 0] = m[:, 0] = dur_in
            r[:, 1] = m[:, 1] = pitch_in + off[1]
            r[:, 2] = m[:, 2] = pos_in + off[2]
            r[:, 3] = m[:, 3] = pos_out + off[3]
            if form is not None:
                r[:, self.form_cols] = m[:, self.form_cols] = form + self.form_off
        g = torch.embedding_bag(self.net.r_table, self.r_flat, self.r_offsets, False, 0)[0]
        H2 = 2 * self.net.hidden
        self._run(self.steps[0], (g[:, :H2], g[:, H2:]))
        return self.dur_logits_np

    def melody(self, dur_out, closes=None) -> np.ndarray:
        """The melody step after rhythm() on the same inputs, given the chosen next durations
        (and what those notes close, for a model that reads it); returns the next-pitch logits
        [rows, n_pitches] (a view)."""
        if type(dur_out) is int:
            self.m_flat_np[self.dur_col] = dur_out + self.off_dur_out
            if closes is not None:
                self.m_flat_np[-1] = closes + self.off_closes
        else:
            self.m_idx_np[:, self.dur_col] = dur_out + self.off_dur_out
            if closes is not None:
                self.m_idx_np[:, -1] = closes + self.off_closes
        torch.add(torch.embedding_bag(self.net.m_table, self.m_flat, self.m_offsets, False, 0)[0],
                  self.m_from_r, out=self.gi_m0)
        self._run(self.steps[1], None)
        return self.pitch_logits_np
