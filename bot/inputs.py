"""What the service takes as an input picture, whichever front end it came through (the bot's intake, the API's
uploads): one rule, so a picture the bot refuses is not one the API renders."""

from __future__ import annotations

from stylizer.errors import ImageError

#: Telegram refuses photos whose sides differ by more than 20x (results go back as photos).
MAX_ASPECT = 20


def check_picture(width: int, height: int, max_side: int | None = None) -> None:
    """Raise :class:`ImageError` for a picture too large (``max_side``, when given) or too long and thin."""
    if max_side is not None and max(width, height) > max_side:
        raise ImageError(f"image is too large: {width}x{height}, the longest side may be at most {max_side} px")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(f"image is too long and thin ({width}x{height}); the sides may differ at most {MAX_ASPECT}x")
