# One image for every role: `python -m bot` (all-in-one), `migrate`, `web`, `worker` (see README, Production).
#   docker build -t stylebot .                                   # CPU torch
#   docker build -t stylebot-gpu --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .   # GPU workers
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# torch first, from the index of the wanted build: the project's `torch==2.13.*` pin then accepts it as is.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md alembic.ini babel.cfg ./
COPY stylizer stylizer
COPY bot bot
COPY migrations migrations
COPY weights weights
RUN pip install . && useradd --create-home --uid 10001 bot && mkdir /data && chown bot /data
USER bot
# Pictures, results and admin-trained presets; the database is PostgreSQL's in production (DATABASE_URL).
ENV DATA_DIR=/data
VOLUME /data
# Run from /app so that `python -m bot` finds migrations/ and weights/ beside the package.
ENTRYPOINT ["python", "-m", "bot"]
