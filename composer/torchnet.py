"""The torch model behind the sampler's interface: for the models the numpy engine does not run
(joint, LSTM and plain RNN cells), and to check the engine against the model it computes."""

from __future__ import annotations

import numpy as np
import torch

from .modelconfig import form_keys


class TorchNet:
    """A torch model (in eval mode) with the engine's `batch` and `read`."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()
        self.cfg = model.cfg
        self.label_keys = model.inputs.label_keys

    def batch(self, rows: int, labels: np.ndarray) -> "StepBatch":
        return StepBatch(self.model, rows, labels)

    def read(self, steps: dict[str, np.ndarray], labels: tuple[int, ...], n: int, net=None,
             first: int = 0) -> tuple[np.ndarray, np.ndarray, "StepBatch"]:
        """As engine.Engine.read, in one pass of model.prime (over all n steps: a given `net`
        is not needed, the steps before `first` are read again)."""
        batch = {k: torch.from_numpy(np.ascontiguousarray(v[:n])).view(1, n) for k, v in steps.items()}
        batch.update({k: torch.tensor([i]) for k, i in zip(self.label_keys, labels)})
        with torch.inference_mode():
            dur, pitch, state = self.model.prime(batch)
        net = self.batch(1, np.array([labels], np.int64))
        net.state = state
        return dur[0, first:].float().numpy(), pitch[0, first:].float().numpy(), net


    def read_rows(self, steps: dict[str, np.ndarray], label_rows: list[tuple[int, ...]], n: int
                  ) -> tuple[np.ndarray, np.ndarray]:
        """As engine.Engine.read_rows: one read() per labelling."""
        reads = [self.read(steps, labels, n)[:2] for labels in label_rows]
        return np.stack([d for d, _ in reads]), np.stack([p for _, p in reads])


class StepBatch:
    """One batch on the model's own rhythm_step / melody_step (the interface of
    engine.EngineBatch)."""

    def __init__(self, model, rows: int, labels: np.ndarray):
        self.model = model
        self.rows = rows
        self.state = model.init_state(rows)
        self.label_rows = np.ascontiguousarray(labels, np.int64)
        lab = torch.from_numpy(self.label_rows)
        self.labels = {k: lab[:, i] for i, k in enumerate(model.inputs.label_keys)}
        self.form_keys = form_keys(model.cfg)
        self.step: dict = {}

    def select(self, rows: np.ndarray) -> "StepBatch":
        new = StepBatch(self.model, len(rows), self.label_rows[rows])
        new.state = self.state.select(torch.from_numpy(np.asarray(rows, np.int64)))
        return new

    def rhythm(self, dur_in, pitch_in, pos_in, pos_out, form=None) -> np.ndarray:
        t = lambda a: torch.from_numpy(np.asarray(a, np.int64).reshape(-1))  # noqa: E731
        self.step = {"dur_in": t(dur_in), "pitch_in": t(pitch_in), "pos_in": t(pos_in),
                     "pos_out": t(pos_out), **self.labels}
        for i, k in enumerate(self.form_keys):
            self.step[k] = torch.from_numpy(np.ascontiguousarray(form[:, i], np.int64))
        with torch.inference_mode():
            logits, self.state = self.model.rhythm_step(self.step, self.state)
        return logits.float().numpy()

    def melody(self, dur_out, closes=None) -> np.ndarray:
        if closes is not None:
            self.step["closes"] = torch.from_numpy(np.asarray(closes, np.int64).reshape(-1))
        with torch.inference_mode():
            logits, self.state = self.model.melody_step(
                self.step, torch.from_numpy(np.asarray(dur_out, np.int64).reshape(-1)), self.state)
        return logits.float().numpy()
