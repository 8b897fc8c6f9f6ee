# Two commands matter: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_TIME ?= 2m
PYTEST_ARGS ?=

# --- Which Kafka the demo runs on: tansu (one in-memory broker, the default, no Java needed) or apache (three
# replicated Apache Kafka brokers; needs Java 17, and fetches the jars with Maven once into ~/.cache/chaos-events).
KAFKA ?= tansu
ifeq ($(KAFKA),apache)
DEMO_SCENARIO ?= scenarios/gameday-apache.yml
DEMO_PREPARE := $(PY) -m chaos_events.demo fetch-kafka &&
else
DEMO_SCENARIO ?= scenarios/gameday.yml
DEMO_PREPARE :=
endif
# --- end of the Kafka choice

.PHONY: demo test bench venv clean images

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[demo,dev]'
	touch $(STAMP)

venv: $(STAMP)

# Starts the demo platform on 127.0.0.1, runs the game day, prints the verdict, stops everything it started.
demo: $(STAMP)
	$(DEMO_PREPARE) $(PY) -m chaos_events.demo gameday --kafka $(KAFKA) --run-time $(DEMO_TIME) --scenario $(DEMO_SCENARIO)

test: $(STAMP)
	$(PY) -m pytest -ra $(PYTEST_ARGS)

# --- Images of docker-compose.locust.yml, built locally (no registry needed; cached by a hash of their inputs).
# The Kafka image needs the broker's jars: fetch-kafka assembles them with Maven, once.
images: $(STAMP)
	$(PY) -m chaos_events.demo fetch-kafka
	$(PY) -m chaos_events.demo.images build
# --- end of the images target

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .run reports .pytest_cache
