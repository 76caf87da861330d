"""The few exception types callers are expected to catch.

Everything the library raises on purpose derives from :class:`StylizerError`, so the CLI and the bot
can turn it into a one-line message without guessing which internal exception means "bad input".
"""


class StylizerError(Exception):
    """Base class for errors a caller should report to the user rather than crash on."""


class ImageError(StylizerError):
    """The input is not a usable image (corrupt, unsupported, too big, too small)."""


class VideoError(ImageError):
    """The input is not a usable video or animation (corrupt, no video track, too long, too big)."""


class PresetError(StylizerError):
    """A preset is unknown, its weights file is missing or corrupt, or it does not fit the method."""


class MethodError(StylizerError):
    """An unknown method, or a method that cannot serve this request (e.g. weights not trained yet)."""


class Cancelled(StylizerError):
    """The caller set the cancel event; the job stopped at the next safe point."""
