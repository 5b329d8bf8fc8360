# sidewalk_robot: the two commands are `make demo` and `make test`; both install first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROS_DOMAIN_ID ?= $(shell shuf -i 100-199 -n 1)
PYTEST_ARGS ?=

# Every ROS 2 process started from here stays on loopback, in a domain of its own.
export FASTDDS_DEFAULT_PROFILES_FILE := $(CURDIR)/config/dds/loopback_only.xml
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export ROS_DOMAIN_ID
unexport FASTRTPS_DEFAULT_PROFILES_FILE ROS_AUTOMATIC_DISCOVERY_RANGE ROS_LOCALHOST_ONLY ROS_STATIC_PEERS

.PHONY: install system-packages demo test test-all scenarios bench perception-model freeze clean

install: system-packages $(STAMP)

# The official SDFormat parser validates our worlds in the tests; optional outside CI.
system-packages:
	@if dpkg -s libsdformat-dev >/dev/null 2>&1 && command -v pkg-config >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing libsdformat-dev (SDFormat checker for the world tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsdformat-dev pkg-config >/dev/null; \
	else echo "note: libsdformat-dev not installed and apt-get not usable; the SDFormat checks will skip"; fi

$(STAMP): requirements.txt setup.py setup.cfg package.xml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: install
	$(BIN)/sidewalk-robot demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

scenarios: install
	$(BIN)/sidewalk-robot scenarios

# The shipped perception model's recipe (docs/perception.md): the dataset, two seeds of the
# default training configuration, one per core at the same time (~25 min), combined, evaluated.
RETRAIN := runs/perception/retrain
perception-model: install
	@[ -f datasets/sidewalk_v2/card.json ] || $(BIN)/sidewalk-robot dataset
	@mkdir -p $(RETRAIN)
	$(BIN)/sidewalk-robot train --seed 3 --output $(RETRAIN)/seed_3 --run-dir $(RETRAIN)/run_3 \
		--version sidewalk_seg_v5_seed3 --resume & first=$$!; \
	$(BIN)/sidewalk-robot train --seed 4 --output $(RETRAIN)/seed_4 --run-dir $(RETRAIN)/run_4 \
		--version sidewalk_seg_v5_seed4 --resume --quiet > $(RETRAIN)/seed_4.log 2>&1 & second=$$!; \
	wait $$first && wait $$second || { echo "training failed (see $(RETRAIN)/seed_4.log)"; exit 1; }
	rm -rf $(RETRAIN)/sidewalk_seg_v5
	$(BIN)/sidewalk-robot ensemble $(RETRAIN)/seed_3 $(RETRAIN)/seed_4 --output $(RETRAIN)/sidewalk_seg_v5
	$(BIN)/sidewalk-robot evaluate --model $(RETRAIN)/sidewalk_seg_v5 --split validation --quiet
	$(BIN)/sidewalk-robot evaluate --model $(RETRAIN)/sidewalk_seg_v5 --quiet

bench: install
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

freeze:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^pip==' > requirements.txt.new
	@echo "review requirements.txt.new, then move it over requirements.txt"

clean:
	rm -rf $(VENV) build install log .pytest_cache .hypothesis runs *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
