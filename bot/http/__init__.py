"""The HTTP front end: the REST API under ``/v1``, the IBM MAX model-serving contract, OpenAPI and its docs page.

A sibling of the Telegram front end above the same core (jobs, queue, workers, limits, storage): a request
becomes the same kind of job row as a button press, and :mod:`.delivery` is this front end's side of it.
``app.py`` only wires things up; ``views.py`` are thin views over ``schemas.py`` (the pydantic models that
validate requests and generate the OpenAPI document); ``auth.py`` says who is calling, ``limits.py`` how often
they may, ``problems.py`` how errors read (RFC 9457).
"""
