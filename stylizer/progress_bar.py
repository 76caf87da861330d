"""What a CLI run shows while it works: a bar over a folder's files and one over a clip's frames or a
high-quality run's steps (``rich``, on a terminal only: quiet in pipes and logs), then one summary line on a
terminal (files, seconds, where), or the same summary as JSON on stdout with ``--json`` for scripts. Torch-free,
so the CLI's OpenVINO path stays light."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


class Reporter:
    def __init__(self, total: int, output: Path, as_json: bool = False, stream: Any = None) -> None:
        self.total, self.output, self.as_json = total, output, as_json
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self.files: list[str] = []
        self._bar: Any = None
        self._step_task: Any = None
        if not as_json and getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(file=self.stream), transient=True)
            self._bar.start()
            self._files_task = self._bar.add_task("stylizing", total=total) if total > 1 else None

    def step(self, progress: Any) -> None:
        """A method's progress report (clip frames, optimisation steps): the inner bar."""
        if self._bar is None or not getattr(progress, "total", 0):
            return
        if self._step_task is None:
            self._step_task = self._bar.add_task(progress.stage, total=progress.total)
        self._bar.update(self._step_task, completed=progress.step, total=progress.total, description=progress.stage)

    def done(self, source: Path, out: Path) -> None:
        self.files.append(str(out))
        if self._bar is not None:
            if self._step_task is not None:
                self._bar.remove_task(self._step_task)
                self._step_task = None
            if self._files_task is not None:
                self._bar.update(self._files_task, advance=1, description=source.name)

    def close(self, out: Any = None) -> dict:
        """Stop the bars and write the summary: a line on stderr, or JSON on stdout with ``--json``."""
        if self._bar is not None:
            self._bar.stop()
        seconds = time.perf_counter() - self.started
        summary = {"files": len(self.files), "seconds": round(seconds, 2), "output": str(self.output),
                   "outputs": self.files}
        if self.as_json:
            print(json.dumps(summary), file=out or sys.stdout)
        elif getattr(self.stream, "isatty", lambda: False)():  # quiet in pipes and logs
            noun = "file" if len(self.files) == 1 else "files"
            print(f"stylized {len(self.files)} {noun} in {seconds:.1f} s -> {self.output}", file=self.stream)
        return summary


class TrainingBar:
    """A training's steps as a bar (the latest losses beside it) on a terminal; nothing in pipes and logs, where
    the trainer's log lines say the same. ``update`` is cheap enough for every step."""

    def __init__(self, tag: str, total: int, done: int = 0, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self._bar: Any = None
        if getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
                                 console=Console(file=self.stream), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(tag, total=total, completed=done, losses="")

    def update(self, step: int, losses: str | None = None) -> None:
        if self._bar is not None:
            fields = {"losses": losses} if losses is not None else {}
            self._bar.update(self._task, completed=step, **fields)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
