"""What a running job or training shows: the worker thread writes progress, the status ticker reads it."""

from __future__ import annotations

from PIL import Image

from stylizer.methods import Progress


class Live:
    """Latest progress report (and Gatys preview) of one running task, shared with its status ticker."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.preview: Image.Image | None = None
        self.preview_version = 0

    def update(self, progress: Progress) -> None:
        self.progress = progress
        if progress.preview is not None:
            self.preview = progress.preview
            self.preview_version += 1

    @property
    def percent(self) -> int | None:
        p = self.progress
        return None if p is None or not p.total else round(100 * p.fraction)


def bar(percent: int) -> str:
    return "▓" * (percent // 10) + "░" * (10 - percent // 10)
