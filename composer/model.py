"""The dual rhythm/melody recurrent network and the single-stream 'joint' baseline (only the model).

Batches are dicts of LongTensors (see encoding.streams): per step [B, T]
  dur_in, pitch_in, pos_in   the current note (BOS at step 0)
  pos_out                    position in the bar where the next note starts
  dur_out                    the next duration (teacher-forced input of the melody network)
and per tune [B]: meter, mode, style (label ids) and lengths (valid steps).

dual:  rhythm stack  x_t = [cur note, pos_in, pos_out, labels]            -> P(dur_out[t])
       melody stack  [x_t, emb(dur_out[t]), rhythm top hidden h_t]        -> P(pitch_out[t])
joint: one stack over one token per note, output over all (duration, pitch) pairs (the
       MelodyRNN-style baseline). Its input embeds the note's duration and pitch separately
       and concatenates them -- a factored embedding of the combined token that keeps the
       parameter budget for the recurrent layers. Its forward returns the marginal duration
       logits and log P(pitch | true next duration), so both archs report rhythm and pitch
       bits alike.

Step by step (sampling, continuing, scoring), for both archs:
  state = model.init_state(B)
  dur_logits, state = model.rhythm_step(step, state)              # step: step_keys(cfg) -> [B]
  pitch_logits, state = model.melody_step(step, next_dur, state)  # next_dur: chosen tokens [B]
and model.prime(batch) runs whole fragments in one pass and returns their final states.

Loss (nll_terms): cross-entropy of the next duration plus that of the next pitch. Bits per
note count every predicted event: each note, and the END that closes each tune.

pos_out is not a look-ahead: it equals pos_in + the current duration (mod the bar), so the
rhythm network may read it; it tells the network where in the bar the note it predicts starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .encoding import PAD
from .formfeatures import CLOSES_KEY, CLOSES_SIZE
from .modelconfig import ModelConfig, input_tables, label_keys, melody_input_size, reads_closes

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}

@dataclass
class ModelState:
    """Recurrent state of a batch between steps.

    rhythm, melody: the cells' states ([layers, B, H] tensors, or (h, c) pairs for LSTM);
    the joint arch keeps its single stack in `rhythm`. top: what melody_step needs from the
    preceding rhythm_step -- the rhythm network's top hidden [B, H] (dual) or the joint
    log-probabilities [B, n_durations, n_pitches] (joint).
    """

    rhythm: Any
    melody: Any = None
    top: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> "ModelState":
        """The state of the batch rows `index` (a LongTensor), e.g. to keep the best samples."""
        pick = lambda s: None if s is None else (  # noqa: E731
            tuple(x.index_select(1, index) for x in s) if isinstance(s, tuple)
            else s.index_select(1, index))
        top = None if self.top is None else self.top.index_select(0, index)
        return ModelState(pick(self.rhythm), pick(self.melody), top)


class _Inputs(nn.Module):
    """Embeddings of the per-step features shared by both networks, concatenated in the order
    of `input_tables`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layout = input_tables(cfg)
        self.label_keys = label_keys(cfg)
        for _, table, rows, width in self.layout:
            if not hasattr(self, table):
                setattr(self, table, nn.Embedding(rows, width))
        self.dim = sum(width for *_, width in self.layout)

    def slots(self) -> list[tuple[str, nn.Embedding]]:
        """(batch key, embedding) of each input, in concatenation order."""
        return [(key, getattr(self, table)) for key, table, _, _ in self.layout]

    def forward(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, T] (or [B] for one step) features -> [B, T, dim] (or [B, dim])."""
        steps = b["dur_in"].dim() == 2
        out = []
        for key, emb in self.slots():
            x = emb(b[key])
            if steps and key in self.label_keys:  # labels are per tune: broadcast over time
                x = x.unsqueeze(1).expand(-1, b["dur_in"].shape[1], -1)
            out.append(x)
        return torch.cat(out, dim=-1)


def _rnn(cfg: ModelConfig, input_size: int, hidden: int) -> nn.RNNBase:
    return CELLS[cfg.cell](input_size, hidden, num_layers=cfg.layers, batch_first=True,
                           dropout=cfg.dropout if cfg.layers > 1 else 0.0)


class _Base(nn.Module):
    """The input embeddings and the first stack (rhythm, or the joint model's only one), and
    shared helpers: state creation and running a stack one step or over a whole batch."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.inputs = _Inputs(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.rhythm = _rnn(cfg, self.inputs.dim, cfg.hidden)

    cfg: ModelConfig

    def _zeros(self, rnn: nn.RNNBase, batch: int, device) -> Any:
        h = torch.zeros(rnn.num_layers, batch, rnn.hidden_size, device=device)
        return (h, h.clone()) if isinstance(rnn, nn.LSTM) else h

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @staticmethod
    def _run(rnn: nn.RNNBase, x: torch.Tensor, state: Any, lengths: torch.Tensor | None
             ) -> tuple[torch.Tensor, Any]:
        """Run a stack over [B, T, D]; with lengths, the returned state is each row's last valid
        step (packed sequence), otherwise the state after step T."""
        if lengths is None:
            return rnn(x, state)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, state = rnn(packed, state)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, state

    def nll(self, batch: dict[str, torch.Tensor]
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Summed rhythm and pitch negative log-likelihood (nats) and the number of predicted
        events (notes plus one END per tune) -- see `nll_terms`."""
        dur_logits, pitch_logits = self(batch)
        return nll_terms(batch, dur_logits, pitch_logits)


class DualModel(_Base):
    """Rhythm stack -> next duration; melody stack (reads the next duration and the rhythm
    stack's hidden state) -> next pitch."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        if reads_closes(cfg):  # what the next note closes: known once its duration is
            self.closes = nn.Embedding(CLOSES_SIZE, cfg.form_emb)
        self.melody = _rnn(cfg, melody_input_size(cfg), cfg.hidden)
        self.dur_head = nn.Linear(cfg.hidden, cfg.n_durations)
        self.pitch_head = nn.Linear(cfg.hidden, cfg.n_pitches)

    def _next_note(self, b: dict[str, torch.Tensor], next_dur: torch.Tensor) -> list[torch.Tensor]:
        """The melody network's inputs about the next note: its duration (and what it closes)."""
        out = [self.inputs.dur(next_dur)]
        if reads_closes(self.cfg):
            out.append(self.closes(b[CLOSES_KEY]))
        return out

    def _streams(self, batch: dict, rstate: Any, mstate: Any, lengths: torch.Tensor | None):
        x = self.drop(self.inputs(batch))
        r_out, rstate = self._run(self.rhythm, x, rstate, lengths)
        nxt = [self.drop(e) for e in self._next_note(batch, batch["dur_out"])]
        m_in = torch.cat([x, *nxt, r_out], dim=-1)
        m_out, mstate = self._run(self.melody, m_in, mstate, lengths)
        return r_out, m_out, rstate, mstate

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits over whole padded sequences: ([B,T,n_dur], [B,T,n_pitch])."""
        r_out, m_out, _, _ = self._streams(batch, None, None, None)
        return self.dur_head(self.drop(r_out)), self.pitch_head(self.drop(m_out))

    # step-by-step API (sampling, continuation, scoring) ------------------------------------
    def init_state(self, batch_size: int) -> ModelState:
        dev = self.device
        return ModelState(self._zeros(self.rhythm, batch_size, dev),
                          self._zeros(self.melody, batch_size, dev))

    def prime(self, batch: dict[str, torch.Tensor]
              ) -> tuple[torch.Tensor, torch.Tensor, ModelState]:
        """Run whole fragments in one pass (teacher-forced, dur_out required). Returns the logits
        as forward() and the state after each row's last valid step (batch['lengths'], or all T).
        Feed the fragment minus its final END step, then continue with rhythm_step on the last
        note."""
        lengths = batch.get("lengths")
        r_out, m_out, rstate, mstate = self._streams(batch, None, None, lengths)
        return self.dur_head(r_out), self.pitch_head(m_out), ModelState(rstate, mstate)

    def rhythm_step(self, step: dict[str, torch.Tensor], state: ModelState
                    ) -> tuple[torch.Tensor, ModelState]:
        """One step of the rhythm network. step: dict of [B] tensors with step_keys(cfg) (the current
        note, its position, the next note's position, the labels). Returns the next-duration
        logits [B, n_durations] and the new state (which carries the rhythm hidden for
        melody_step)."""
        x = self.inputs(step).unsqueeze(1)
        r_out, rstate = self.rhythm(x, state.rhythm)
        return self.dur_head(r_out[:, 0]), ModelState(rstate, state.melody, r_out[:, 0])

    def melody_step(self, step: dict[str, torch.Tensor], next_dur: torch.Tensor, state: ModelState
                    ) -> tuple[torch.Tensor, ModelState]:
        """One step of the melody network, after rhythm_step on the same `step`, given the chosen
        next duration tokens [B] (and, for a model that reads it, step['closes']: what the note
        closes). Returns the next-pitch logits [B, n_pitches] and the state."""
        x = self.inputs(step)
        m_in = torch.cat([x, *self._next_note(step, next_dur), state.top], dim=-1).unsqueeze(1)
        m_out, mstate = self.melody(m_in, state.melody)
        return self.pitch_head(m_out[:, 0]), ModelState(state.rhythm, mstate, None)


class JointModel(_Base):
    """One stack over notes; one softmax over all (duration, pitch) pairs."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.head = nn.Linear(cfg.hidden, cfg.n_durations * cfg.n_pitches)

    def _joint(self, out: torch.Tensor) -> torch.Tensor:
        """Hidden [..., H] -> normalised joint log-probabilities [..., n_dur, n_pitch]."""
        logits = self.head(out).float()
        logp = logits.log_softmax(-1)
        return logp.unflatten(-1, (self.cfg.n_durations, self.cfg.n_pitches))

    @staticmethod
    def _split(joint: torch.Tensor, dur_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint log-probs -> (log P(dur), log P(pitch | dur_out))."""
        dur = joint.logsumexp(-1)
        idx = dur_out.clamp(min=0).unsqueeze(-1).unsqueeze(-1)
        idx = idx.expand(*dur_out.shape, 1, joint.shape[-1])
        at = joint.gather(-2, idx).squeeze(-2)
        return dur, at.log_softmax(-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.rhythm(self.drop(self.inputs(batch)))
        return self._split(self._joint(self.drop(out)), batch["dur_out"])

    def init_state(self, batch_size: int) -> ModelState:
        return ModelState(self._zeros(self.rhythm, batch_size, self.device))

    def prime(self, batch: dict[str, torch.Tensor]
              ) -> tuple[torch.Tensor, torch.Tensor, ModelState]:
        out, state = self._run(self.rhythm, self.inputs(batch), None, batch.get("lengths"))
        dur, pitch = self._split(self._joint(out), batch["dur_out"])
        return dur, pitch, ModelState(state)

    def rhythm_step(self, step, state):
        out, s = self.rhythm(self.inputs(step).unsqueeze(1), state.rhythm)
        joint = self._joint(out[:, 0])
        return joint.logsumexp(-1), ModelState(s, None, joint)

    def melody_step(self, step, next_dur, state):
        at = state.top.gather(1, next_dur.view(-1, 1, 1).expand(-1, 1, self.cfg.n_pitches))
        return at[:, 0].log_softmax(-1), ModelState(state.rhythm, None, None)

    rhythm_step.__doc__ = DualModel.rhythm_step.__doc__
    melody_step.__doc__ = DualModel.melody_step.__doc__


def build_model(cfg: ModelConfig) -> DualModel | JointModel:
    return DualModel(cfg) if cfg.arch == "dual" else JointModel(cfg)


def nll_terms(batch: dict[str, torch.Tensor], dur_logits: torch.Tensor, pitch_logits: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rhythm nats, pitch nats, events), each summed over the batch.

    Every step whose dur_out is not PAD is one predicted event: each note, and the END that
    closes a tune. Bits per note = nats / events / ln 2, so a tune of n notes counts n + 1
    events; the END step has no pitch (pitch_out == PAD) and adds rhythm bits only.
    """
    dur_t, pitch_t = batch["dur_out"], batch["pitch_out"]
    rhythm = F.cross_entropy(dur_logits.flatten(0, -2).float(), dur_t.flatten(),
                             ignore_index=PAD, reduction="sum")
    pitch = F.cross_entropy(pitch_logits.flatten(0, -2).float(), pitch_t.flatten(),
                            ignore_index=PAD, reduction="sum")
    return rhythm, pitch, (dur_t != PAD).sum()


def bits(nats: float, events: float) -> float:
    """Nats summed over `events` -> bits per event."""
    return nats / max(events, 1) / math.log(2)
