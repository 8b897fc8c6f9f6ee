# One image for the harness and the demo platform: Locust master and workers (chaos-events plugin), the TCP fault
# proxy, the cross-container watchdog, and the demo API and consumer. docker-compose.locust.yml runs each part
# from it with its own command.
#
# BASE_IMAGE is any Debian bookworm image whose `python` and `pip` are Python 3.11 or newer:
#   where a registry is reachable:  docker build -t chaos-events:local .            (python:3.11-slim)
#   where none is (no image pull):  python -m chaos_events.demo.images build        (a local debootstrap base,
#                                   chaos-events-base:<hash>, passed as --build-arg BASE_IMAGE=...)
# Build with `--network host` where the default bridge has no route out: pip reaches PyPI from the build.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them: a stub package (and
# README.md, which pyproject.toml names) stands in until `COPY . .` brings the real one for the second step.
COPY pyproject.toml ./
RUN mkdir -p chaos_events && touch README.md chaos_events/__init__.py \
    && pip install -e '.[demo]' \
    && rm -rf chaos_events

COPY . .
RUN pip install --no-deps -e '.[demo]' \
    && mkdir -p /app/reports /app/.run

# Root, because the Locust master and the watchdog talk to the mounted Docker socket, whose group id differs
# between hosts. Documentation only: compose uses host networking and every part listens on 127.0.0.1.
EXPOSE 8089 9646 8000 8474
CMD ["locust", "--help"]
