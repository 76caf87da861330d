"""Jobs: the persisted queue and its workers (:mod:`.queue`), the stylization in worker threads
(:mod:`.render`) and what the user sees of it, status and results (:mod:`.delivery`)."""

from .queue import JobRunner, JobSpec, Refused

__all__ = ["JobRunner", "JobSpec", "Refused"]
