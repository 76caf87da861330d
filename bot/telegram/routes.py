"""Every inline button's callback route, defined once: its code, its arguments and so its pattern.

Keyboards build data with :meth:`Route.data`; handlers register with ``CallbackQueryHandler(pattern=
route.pattern)`` and read the arguments from ``context.match``. Data stays far below Telegram's 64-byte
limit: a short code and database ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A database id or a small number: ASCII digits only (``\d`` also takes other scripts' digits, which ``int`` then
#: reads or refuses) and at most 18 of them, so every match fits a 64-bit column. Anything else matches no route
#: and is answered as an unknown button: a refused event, never an error.
INT = r"([0-9]{1,18})"
WORD = r"([a-z0-9_]{1,40})"
#: Telegram's limit on callback_data
MAX_DATA = 64


@dataclass(frozen=True)
class Route:
    code: str
    args: tuple[str, ...] = ()  # one regex group per argument

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(r"\A" + ":".join([re.escape(self.code), *self.args]) + r"\Z")

    def data(self, *values: object) -> str:
        if len(values) != len(self.args):
            raise ValueError(f"route {self.code!r} takes {len(self.args)} arguments, got {len(values)}")
        data = ":".join([self.code, *map(str, values)])
        if not self.pattern.match(data) or len(data.encode()) > MAX_DATA:
            raise ValueError(f"bad callback data {data!r} for route {self.code!r}")
        return data


# the style menu of a photo, album or clip (by its first image's id)
PAGE = Route("pg", (INT, INT))  # image, page
PRESET = Route("ps", (INT, INT))  # image, preset row
OWN_STYLE = Route("ow", (INT,))
HIGH_QUALITY = Route("hq", (INT,))
ALL_STYLES = Route("al", (INT,))
NOOP = Route("noop")
# a running job
CANCEL_JOB = Route("x", (INT,))
# a result
STRENGTH = Route("rs", (INT, INT))  # job, percent
COLOURS = Route("rc", (INT,))
ANOTHER = Route("ra", (INT,))
FULL_RES = Route("rf", (INT, INT))  # job, index of the photo in an album (0 otherwise)
HQ_RERUN = Route("rh", (INT,))
BRUSH = Route("rb", (INT, WORD))  # job, small | medium | large
MIX_MENU = Route("rm", (INT,))
MIX = Route("mx", (INT, INT, INT))  # job, preset row, percent of the new style
# commands' buttons
SETTINGS = Route("se", (WORD, INT))  # s(trength) | z (size), value; c (colours toggle), 0
PRIVACY = Route("pv", (WORD,))
LANGUAGE = Route("lg", (WORD,))
SAMPLE = Route("sm")
# admins
ADMIN_PRESET = Route("ap", (WORD, INT))  # t(oggle) | x (delete), preset row
PUBLISH = Route("tp", (INT,))
DISCARD = Route("td", (INT,))
CANCEL_TRAINING = Route("tx", (INT,))
