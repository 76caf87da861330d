"""The Telegram front end: handlers (conversation, inline keyboards, admin commands), keyboards and callback
routes, the typed context, the Telegram side of job delivery (status messages, results) and of admin training.
A sibling of :mod:`bot.http` above the core; the roles (:mod:`bot.app`, :mod:`bot.web`, :mod:`bot.worker`) wire
it."""
