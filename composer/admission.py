"""Admission to the server's work pool by estimated cost, so that an admitted request starts
within about `max_wait` seconds; a fair share per client; and honest waits for the refused.

A request's cost is estimated in units of work (about one network step of one row, see
`compose_units` and `upload_units`) before it runs. Seconds per unit are learned from the
requests that finish, separately for each kind of request. The wait a new request would have
is predicted by playing the queue forward on the pool's workers."""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass, field

# Measured on a 2-core machine, alone: a 64-bar best-of-16 compose (about 3,400 units) takes
# 0.53 s to answer, an 8-bar one (about 100 units) 22 ms.
DEFAULT_SECONDS_PER_UNIT = 1.5e-4
DEFAULT_MAX_WAIT_S = 0.5  # predicted seconds an admitted request may wait to start
OVERRUN_SHARE = 0.5  # a job past its estimate is taken to need this share of its time so far
LEARNING_RATE = 0.2  # weight of the newest finished request in the seconds-per-unit average
ROW_SHARE = 1 / 3  # one more row of a batch costs about a third of the step's fixed cost
RESPONSE_UNITS = 0.3  # per note: ABC, MIDI, notation and JSON of the answer
PARSE_UNITS = 2.0  # per note of an upload: reading the file
# Upload bytes per note, by file type, to estimate an upload's notes before it is read
BYTES_PER_NOTE = {".abc": 1.5, ".mid": 6.0, ".midi": 6.0, ".kern": 4.0, ".krn": 4.0,
                  ".musicxml": 150.0, ".xml": 150.0, ".mxl": 30.0, ".json": 40.0}


def compose_units(bars: int, bar_ticks: int, rows: int, read_notes: int = 0) -> float:
    """Units of a compose or continuation: `bars` new bars drawn on `rows` rows (best_of), after
    reading `read_notes` notes of a fragment. A bar is counted as eighth notes."""
    notes = bars * max(1, bar_ticks // 12)
    return notes * (1 + rows * ROW_SHARE + RESPONSE_UNITS) + read_notes * (1 + RESPONSE_UNITS)


def upload_notes(size: int, filename: str, max_notes: int) -> int:
    """How many notes an upload of `size` bytes may hold (at most `max_notes`)."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return min(max_notes, int(size / BYTES_PER_NOTE.get(suffix, 2.0)) + 1)


def upload_units(notes: int, passes: float = 1) -> float:
    """Units of reading an upload of `notes` notes and passing the model over it `passes`
    times (a batch of k rows counts 1 + k * ROW_SHARE passes)."""
    return notes * (PARSE_UNITS + passes + RESPONSE_UNITS)


def _left(job: Job, now: float) -> float:
    """Seconds a running job still needs: its estimate less the time it has run, or for one past
    its estimate, a share of the time so far."""
    ran = now - job.started
    return max(job.seconds - ran, OVERRUN_SHARE * ran)


@dataclass(eq=False)
class Job:
    """One admitted request: who sent it, what it costs, and the flag that cancels it."""

    client: str
    kind: str
    units: float
    seconds: float  # the estimate when admitted
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float | None = None


class Busy(Exception):
    """A request refused for now; `retry_after`: seconds until one like it would be admitted."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


class Admission:
    """Which requests the pool's `workers` take on: one is admitted when it would start within
    `max_wait` seconds (or a worker is free), when fewer than `capacity` are in flight, and when
    its client has fewer than `client_share` in flight."""

    def __init__(self, workers: int, capacity: int, max_wait: float = DEFAULT_MAX_WAIT_S,
                 client_share: int | None = None) -> None:
        self.workers, self.capacity, self.max_wait = workers, capacity, max_wait
        self.client_share = client_share or max(1, workers)
        self.rate: dict[str, float] = {}
        self.jobs: list[Job] = []  # in the order the pool takes them
        self.lock = threading.Lock()

    def seconds(self, kind: str, units: float) -> float:
        return units * self.rate.get(kind, DEFAULT_SECONDS_PER_UNIT)

    def _start_in(self, now: float) -> float:
        """Seconds until a request admitted now would start: the queue played forward."""
        running = [_left(j, now) for j in self.jobs
                   if j.started is not None and not j.cancel.is_set()]
        free = running + [0.0] * max(0, self.workers - len(running))
        heapq.heapify(free)
        for j in self.jobs:
            if j.started is None and not j.cancel.is_set():
                heapq.heappush(free, heapq.heappop(free) + j.seconds)
        return free[0]

    def full(self) -> float | None:
        """Seconds until any request could be admitted, when none could be now; else None.
        Checked before a request is even parsed, so that a refusal under load costs little."""
        with self.lock:
            start_in = self._start_in(time.monotonic())
            if len(self.jobs) >= self.capacity or start_in > self.max_wait:
                return max(0.05, start_in - self.max_wait)
        return None

    def admit(self, client: str, kind: str, units: float) -> Job:
        """A Job for the request, or Busy."""
        now = time.monotonic()
        with self.lock:
            start_in = self._start_in(now)
            mine = [j for j in self.jobs if j.client == client and not j.cancel.is_set()]
            if len(mine) >= self.client_share:
                soonest = min(_left(j, now) if j.started is not None else j.seconds + start_in
                              for j in mine)
                raise Busy(f"you have {len(mine)} requests in progress; wait for one to finish",
                           max(0.05, soonest))
            if len(self.jobs) >= self.capacity or start_in > self.max_wait:
                raise Busy("the server is busy; try again in a moment",
                           max(0.05, start_in - self.max_wait))
            job = Job(client, kind, units, self.seconds(kind, units))
            self.jobs.append(job)
            return job

    def start(self, job: Job) -> None:
        job.started = time.monotonic()

    def finish(self, job: Job) -> None:
        """The job is done (or cancelled): its slot frees, and its time teaches the estimate."""
        with self.lock:
            self.jobs.remove(job)
            if job.started is None or job.cancel.is_set() or job.units <= 0:
                return
            per_unit = (time.monotonic() - job.started) / job.units
            old = self.rate.get(job.kind, DEFAULT_SECONDS_PER_UNIT)
            self.rate[job.kind] = old + LEARNING_RATE * (per_unit - old)
