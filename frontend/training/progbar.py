"""Keras-style progress output: a live bar per epoch (verbose=1) or one line per epoch (verbose=2)."""
from __future__ import annotations

import sys
import time

BAR_WIDTH = 20


def format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {_fmt_value(v)}" for k, v in logs.items())


def _fmt_value(v) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{f:.4f}" if abs(f) >= 1e-3 or f == 0 else f"{f:.4e}"


def format_time(seconds: float, steps: int) -> str:
    per_step = seconds / max(steps, 1)
    per = f"{per_step * 1e6:.0f}us/step" if per_step < 1e-3 else (
        f"{per_step * 1e3:.0f}ms/step" if per_step < 1 else f"{per_step:.0f}s/step")
    return f"{seconds:.0f}s {per}"


class Progbar:
    """Progress of one epoch (or one evaluate/predict run) over `target` steps."""

    def __init__(self, target: int | None, verbose: int = 1, stream=None, interval: float = 0.05):
        self.target = target
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.interval = interval
        self.start = time.time()
        self.last_draw = 0.0
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())  # redraw in place only on a terminal
        self.width = 0

    def update(self, step: int, logs: dict | None = None, finalize: bool = False):
        if self.verbose == 0:
            return
        now = time.time()
        if self.verbose == 1 and (finalize or (self.live and now - self.last_draw >= self.interval)):
            self.last_draw = now
            line = f"{self._counter(step)} {self._bar(step)} {format_time(now - self.start, step)}"
            if logs:
                line += " - " + format_logs(logs)
            pad = " " * max(self.width - len(line), 0)
            self.width = len(line)
            self.stream.write(("\r" if self.live else "") + line + pad + ("\n" if finalize else ""))
            self.stream.flush()
        elif self.verbose == 2 and finalize:
            line = f"{self._counter(step)} - {format_time(now - self.start, step).replace(' ', ' - ')}"
            if logs:
                line += " - " + format_logs(logs)
            self.stream.write(line + "\n")
            self.stream.flush()

    def _counter(self, step: int) -> str:
        if self.target is None:
            return f"{step}/Unknown"
        width = len(str(self.target))
        return f"{step:>{width}}/{self.target}"

    def _bar(self, step: int) -> str:
        if not self.target:
            return ""
        done = int(BAR_WIDTH * min(step, self.target) / self.target)
        return "━" * done + "─" * (BAR_WIDTH - done) if done < BAR_WIDTH else "━" * BAR_WIDTH
