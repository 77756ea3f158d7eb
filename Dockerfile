# The image every Tend process runs from (compose.yaml): `tend web`, `tend scheduler`,
# `tend worker`, `tend db upgrade`, or `tend run` for everything in one process.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install .
COPY schedules ./schedules
COPY templates ./templates

RUN useradd --system --uid 10001 --home /app tend && chown -R tend /app
USER tend

EXPOSE 8000
CMD ["tend", "run"]
