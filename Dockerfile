# One image for the harness and the demo platform: Locust master and workers (chaos-events plugin), the TCP fault
# proxy, and the demo API and consumer. docker-compose.locust.yml runs each part from it with its own command.
# Base images cannot be pulled on this project's development machines (no registry); build it where one is reachable:
#   docker build -t chaos-events:local .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them: stub packages (and
# README.md, which pyproject.toml names) stand in until `COPY . .` brings the real ones for the second step.
COPY pyproject.toml ./
RUN mkdir -p chaos_events demo && touch README.md chaos_events/__init__.py demo/__init__.py \
    && pip install -e '.[demo]' \
    && rm -rf chaos_events demo

COPY . .
RUN pip install --no-deps -e '.[demo]' \
    && mkdir -p /app/reports /app/.run

# Root, because the Locust master talks to the mounted Docker socket, whose group id differs between hosts.
# Documentation only: compose uses host networking and every part listens on 127.0.0.1.
EXPOSE 8089 9646 8000 8474
CMD ["locust", "--help"]
