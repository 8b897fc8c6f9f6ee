# Two commands matter: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_TIME ?= 2m
DEMO_SCENARIO ?= scenarios/gameday.yml
PYTEST_ARGS ?=

.PHONY: demo test bench venv clean images

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[demo,dev]'
	touch $(STAMP)

venv: $(STAMP)

# Starts the demo platform on 127.0.0.1, runs the game day, prints the verdict, stops everything it started.
demo: $(STAMP)
	$(PY) -m chaos_events.demo gameday --run-time $(DEMO_TIME) --scenario $(DEMO_SCENARIO)

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
