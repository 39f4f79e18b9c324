"""Fast one-step-at-a-time inference for the dual GRU model: fused cells on preallocated tensors.

Sampling runs the two networks one note at a time, so per-step overhead, not arithmetic, is
what costs. This module reads a trained `model.DualModel` (GRU cells) once and then:
- turns the first layers' input projections into table lookups: every input of a step is an
  embedding, and W_ih @ [e1; e2; ...] = sum of (W_ih block @ e_k), so each embedding table is
  multiplied by its block of W_ih once, at load (b_ih folds into the meter rows), and a
  step's whole first-layer input projection is one embedding-bag sum over those tables;
- multiplies each cell's new hidden state once by every matrix that reads it, stacked side by
  side: the next layer's W_ih, its own W_hh for the next step, and at the top of the rhythm
  stack the duration head and the melody stack's input block for the rhythm state;
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


class FusedDual:
    """The read-only, precomputed form of a DualModel; `batch()` makes the per-call buffers."""

    def __init__(self, model: DualModel):
        cfg = model.cfg
        inp = model.inputs
        H, L = cfg.hidden, cfg.layers
        self.hidden, self.layers = H, L
        self.n_durations, self.n_pitches = cfg.n_durations, cfg.n_pitches
        with torch.no_grad():
            dur, pitch, pos = inp.dur.weight.float(), inp.pitch.weight.float(), inp.pos.weight.float()
            labels = [inp.meter.weight.float(), inp.mode.weight.float(), inp.style.weight.float()]
            # column blocks of the first layers' W_ih, in the order of _Inputs.forward
            widths = [cfg.dur_emb, cfg.pitch_emb, cfg.pos_emb, cfg.pos_emb] + [cfg.label_emb] * 3
            bounds = np.concatenate([[0], np.cumsum(widths)]).tolist()
            blocks = lambda w: [w[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]  # noqa: E731

            r = [_gru_weights(model.rhythm, k) for k in range(L)]
            m = [_gru_weights(model.melody, k) for k in range(L)]
            rb, mb = blocks(r[0][0]), blocks(m[0][0])
            d_in = inp.dim
            m_dur_out = m[0][0][:, d_in:d_in + cfg.dur_emb]
            m_rhythm = m[0][0][:, d_in + cfg.dur_emb:]
            # one lookup table [rows, 3H] per network, segments in this order:
            # dur_in | pitch_in | pos_in | pos_out | meter (+ b_ih) | mode | style (| dur_out)
            r_parts = [dur @ rb[0].T, pitch @ rb[1].T, pos @ rb[2].T, pos @ rb[3].T,
                       labels[0] @ rb[4].T + r[0][2], labels[1] @ rb[5].T, labels[2] @ rb[6].T]
            m_parts = [dur @ mb[0].T, pitch @ mb[1].T, pos @ mb[2].T, pos @ mb[3].T,
                       labels[0] @ mb[4].T + m[0][2], labels[1] @ mb[5].T, labels[2] @ mb[6].T,
                       dur @ m_dur_out.T]
            self.r_table, self.m_table = torch.cat(r_parts), torch.cat(m_parts)
            self.offsets = np.cumsum([0] + [len(t) for t in m_parts[:-1]]).astype(np.int64)
            heads = (model.dur_head.weight.float(), model.dur_head.bias.float(),
                     model.pitch_head.weight.float(), model.pitch_head.bias.float())
            # after each cell: h_new @ W -> [what reads it this step | its own W_hh for next step]
            self.r_mats, self.m_mats = [], []
            for k in range(L):
                for stack, mats, top_w, top_b in (
                        (r, self.r_mats, torch.cat([m_rhythm, heads[0]]),
                         torch.cat([torch.zeros(3 * H), heads[1]])),
                        (m, self.m_mats, heads[2], heads[3])):
                    w_ih, w_hh, b_ih, b_hh = stack[k]
                    if k + 1 < L:
                        nxt_w, nxt_b = stack[k + 1][0], stack[k + 1][2]
                    else:
                        nxt_w, nxt_b = top_w, top_b
                    mats.append((torch.cat([nxt_w, w_hh]).T.contiguous(),
                                 torch.cat([nxt_b, b_hh]).contiguous()))

    def batch(self, rows: int, labels: np.ndarray) -> "FusedBatch":
        """Fresh state and buffers for `rows` sequences; labels: int [rows, 3] (meter, mode, style)."""
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
        self.r_idx = torch.zeros(rows, 7, dtype=torch.long)
        self.m_idx = torch.zeros(rows, 8, dtype=torch.long)
        self.r_idx_np, self.m_idx_np = self.r_idx.numpy(), self.m_idx.numpy()
        # torch.embedding_bag (the op under F.embedding_bag) on flat indices with fixed offsets
        self.r_flat, self.m_flat = self.r_idx.view(-1), self.m_idx.view(-1)
        self.r_offsets = torch.arange(0, rows * 7, 7)
        self.m_offsets = torch.arange(0, rows * 8, 8)
        for k in range(3):
            self.r_idx_np[:, 4 + k] = self.m_idx_np[:, 4 + k] = labels[:, k] + off[4 + k]
        self.h_r = [torch.zeros(rows, H) for _ in range(L)]
        self.h_m = [torch.zeros(rows, H) for _ in range(L)]
        self.out_r = [torch.empty(rows, w.shape[1]) for w, _ in net.r_mats]
        self.out_m = [torch.empty(rows, w.shape[1]) for w, _ in net.m_mats]
        self.rz = torch.empty(rows, 2 * H)
        self.n = torch.empty(rows, H)
        self.gi_m0 = torch.empty(rows, 3 * H)
        split = lambda g: (g[:, :2 * H], g[:, 2 * H:])  # noqa: E731  (r,z | n) gate columns
        # per cell: (gi views or None for the embedding, gh views of the previous output, h)
        self.r_cells, self.m_cells = [], []
        for k in range(L):
            self.r_cells.append((split(self.out_r[k - 1][:, :3 * H]) if k else None,
                                 split(self.out_r[k][:, -3 * H:]), self.h_r[k]))
            self.m_cells.append((split(self.out_m[k - 1][:, :3 * H]) if k else split(self.gi_m0),
                                 split(self.out_m[k][:, -3 * H:]), self.h_m[k]))
        self.r_steps = [(c, self.out_r[k], *net.r_mats[k]) for k, c in enumerate(self.r_cells)]
        self.m_steps = [(c, self.out_m[k], *net.m_mats[k]) for k, c in enumerate(self.m_cells)]
        self.m_from_r = self.out_r[-1][:, :3 * H]
        self.dur_logits_np = self.out_r[-1][:, 3 * H:-3 * H].numpy()
        self.pitch_logits_np = self.out_m[-1][:, :-3 * H].numpy()
        self.rz_r, self.rz_z = self.rz[:, :H], self.rz[:, H:]
        if refresh:
            self._refresh()

    def select(self, rows: np.ndarray) -> "FusedBatch":
        """A batch of only the given rows (their state included), e.g. to drop finished ones."""
        new = FusedBatch(self.net, len(rows), self.labels[rows], refresh=False)
        index = torch.from_numpy(np.asarray(rows, np.int64))
        for mine, theirs in zip(self.h_r + self.h_m + self.out_r + self.out_m,
                                new.h_r + new.h_m + new.out_r + new.out_m):
            torch.index_select(mine, 0, index, out=theirs)
        return new

    def _refresh(self) -> None:
        """Recompute every cell's W_hh h + b_hh from the hidden states (after a reset or prime)."""
        for h, out, (w, b) in zip(self.h_r + self.h_m, self.out_r + self.out_m,
                                  self.net.r_mats + self.net.m_mats):
            torch.addmm(b, h, w, out=out)

    def load_state(self, state: ModelState) -> None:
        """Take over the state that DualModel.prime returned."""
        for k in range(self.net.layers):
            self.h_r[k].copy_(state.rhythm[k])
            self.h_m[k].copy_(state.melody[k])
        self._refresh()

    def _run(self, steps: list, gi0: tuple) -> None:
        """Every layer of one network: h <- GRU(h) in place, where r,z = sigmoid(gi + gh),
        n = tanh(gi_n + r * gh_n), h = n + z * (h - n); then h @ [consumers | W_hh]."""
        rz, n, rz_r, rz_z = self.rz, self.n, self.rz_r, self.rz_z
        for (gi, gh, h), out, w, b in steps:
            gi_rz, gi_n = gi or gi0
            torch.add(gi_rz, gh[0], out=rz)
            rz.sigmoid_()
            torch.addcmul(gi_n, rz_r, gh[1], out=n)
            n.tanh_()
            torch.lerp(n, h, rz_z, out=h)
            torch.addmm(b, h, w, out=out)

    def rhythm(self, dur_in, pitch_in, pos_in, pos_out) -> np.ndarray:
        """One rhythm step (ints or int arrays [rows]); returns the next-duration logits
        [rows, n_durations] (a view that the next rhythm() call overwrites)."""
        r, m, off = self.r_idx_np, self.m_idx_np, self.off
        # the melody step of the same note reads the same four inputs
        r[:, 0] = m[:, 0] = dur_in
        r[:, 1] = m[:, 1] = pitch_in + off[1]
        r[:, 2] = m[:, 2] = pos_in + off[2]
        r[:, 3] = m[:, 3] = pos_out + off[3]
        g = torch.embedding_bag(self.net.r_table, self.r_flat, self.r_offsets, False, 0)[0]
        H2 = 2 * self.net.hidden
        self._run(self.r_steps, (g[:, :H2], g[:, H2:]))
        return self.dur_logits_np

    def melody(self, dur_out) -> np.ndarray:
        """The melody step after rhythm() on the same inputs, given the chosen next durations;
        returns the next-pitch logits [rows, n_pitches] (a view)."""
        self.m_idx_np[:, 7] = dur_out + self.off[7]
        torch.add(torch.embedding_bag(self.net.m_table, self.m_flat, self.m_offsets, False, 0)[0],
                  self.m_from_r, out=self.gi_m0)
        self._run(self.m_steps, None)
        return self.pitch_logits_np
