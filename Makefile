# sidewalk_robot: the two commands are `make demo` and `make test`; both install first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TF2_MSGS := interfaces/tf2_msgs
TF2_MSGS_STAMP := $(VENV)/.tf2_msgs-installed
PYTEST_ARGS ?=

# Every ROS 2 process started from here stays on loopback. Each run (the test session, a demo,
# a replay) claims a ROS domain of its own; `make test ROS_DOMAIN_ID=42` chooses one instead.
export FASTDDS_DEFAULT_PROFILES_FILE := $(CURDIR)/config/dds/loopback_only.xml
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
unexport FASTRTPS_DEFAULT_PROFILES_FILE ROS_AUTOMATIC_DISCOVERY_RANGE ROS_LOCALHOST_ONLY ROS_STATIC_PEERS

.PHONY: install system-packages demo test test-all scenarios bench perception-model freeze clean \
	robot-venv

install: system-packages $(STAMP) $(TF2_MSGS_STAMP)

# The official SDFormat parser validates our worlds in the tests, Chromium runs the operator
# console's browser tests; both optional outside CI.
system-packages:
	@if dpkg -s libsdformat-dev >/dev/null 2>&1 && command -v pkg-config >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing libsdformat-dev (SDFormat checker for the world tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsdformat-dev pkg-config >/dev/null; \
	else echo "note: libsdformat-dev not installed and apt-get not usable; the SDFormat checks will skip"; fi
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium (headless browser for the operator console tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: chromium not installed and apt-get not usable; the browser tests will skip"; fi

$(STAMP): requirements.txt requirements-ray.txt setup.py setup.cfg package.xml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-ray.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# tf2_msgs/msg/TFMessage (/tf, /tf_static) has no wheel on PyPI: generate it with the rosidl
# generators of requirements.txt and install it into the venv beside the other message packages.
# pip must not list it (it is no PyPI package), so its egg-info goes. Rebuilt when its files
# change or the venv is new (the stamp lives in it), not on every reinstall of requirements.
$(TF2_MSGS_STAMP): $(TF2_MSGS)/CMakeLists.txt $(TF2_MSGS)/package.xml $(TF2_MSGS)/msg/TFMessage.msg | $(STAMP)
	@command -v cmake >/dev/null && command -v c++ >/dev/null || { echo "error: generating tf2_msgs needs cmake and a C/C++ compiler"; exit 1; }
	@echo "generating tf2_msgs into $(VENV) (about a minute)"
	@rm -rf build/tf2_msgs && mkdir -p build
	@export AMENT_PREFIX_PATH=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH; \
	{ cmake -S $(TF2_MSGS) -B build/tf2_msgs -DCMAKE_PREFIX_PATH=$(CURDIR)/$(VENV) \
		-DCMAKE_INSTALL_PREFIX=$(CURDIR)/$(VENV) -DPython3_EXECUTABLE=$(CURDIR)/$(BIN)/python \
		-DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
	  && cmake --build build/tf2_msgs -j 2 && cmake --install build/tf2_msgs; } > build/tf2_msgs.log 2>&1 \
	|| { tail -40 build/tf2_msgs.log; echo "error: generating tf2_msgs failed (build/tf2_msgs.log)"; exit 1; }
	@rm -rf $(VENV)/lib/python3*/site-packages/tf2_msgs-*.egg-info
	@$(BIN)/python -c 'from tf2_msgs.msg import TFMessage' || { echo "error: tf2_msgs does not import"; exit 1; }
	@touch $@

# The robot's runtime set (requirements-robot.txt, no torch) in a venv of its own, with this
# checkout's package: the tests start perception_node from it (README, "Two installs").
ROBOT_VENV := .venv-robot
ROBOT_STAMP := $(ROBOT_VENV)/.installed
robot-venv: $(ROBOT_STAMP)

$(ROBOT_STAMP): requirements-robot.txt setup.py setup.cfg package.xml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@[ -x $(ROBOT_VENV)/bin/python ] || $(PYTHON) -m venv $(ROBOT_VENV)
	$(ROBOT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-robot.txt
	$(ROBOT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(ROBOT_STAMP)

demo: install
	$(BIN)/sidewalk-robot demo

test: install robot-venv
	SIDEWALK_ROBOT_VENV=$(CURDIR)/$(ROBOT_VENV) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: install robot-venv
	SIDEWALK_ROBOT_VENV=$(CURDIR)/$(ROBOT_VENV) $(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

scenarios: install
	$(BIN)/sidewalk-robot scenarios

# The recipe of the candidate sidewalk_seg_v6 (docs/perception.md; models/sidewalk_seg_v5 stays
# the shipped model, and v5's own from-scratch recipe is this target at commit d6f7074): the
# dataset, then v5's two networks each fine-tuned for 3 epochs on it with the photometric
# augmentation, one per core at the same time; combined, evaluated on validation and on each
# held-out world, and the ensemble exported for ONNX Runtime (model.onnx, as perception_node
# runs it).
RETRAIN := runs/perception/retrain
FINE_TUNE := --epochs 3 --learning-rate 1.5e-3 --resume
perception-model: install
	@[ -f datasets/sidewalk_v3/card.json ] || $(BIN)/sidewalk-robot dataset
	@mkdir -p $(RETRAIN)
	$(BIN)/sidewalk-robot train --seed 3 --init-from models/sidewalk_seg_v5/member_0 $(FINE_TUNE) \
		--output $(RETRAIN)/seed_3 --run-dir $(RETRAIN)/run_3 --version sidewalk_seg_v6_seed3 & first=$$!; \
	$(BIN)/sidewalk-robot train --seed 4 --init-from models/sidewalk_seg_v5/member_1 $(FINE_TUNE) \
		--output $(RETRAIN)/seed_4 --run-dir $(RETRAIN)/run_4 --version sidewalk_seg_v6_seed4 \
		--quiet > $(RETRAIN)/seed_4.log 2>&1 & second=$$!; \
	wait $$first && wait $$second || { echo "training failed (see $(RETRAIN)/seed_4.log)"; exit 1; }
	rm -rf $(RETRAIN)/sidewalk_seg_v6
	$(BIN)/sidewalk-robot ensemble $(RETRAIN)/seed_3 $(RETRAIN)/seed_4 --output $(RETRAIN)/sidewalk_seg_v6
	$(BIN)/sidewalk-robot evaluate --model $(RETRAIN)/sidewalk_seg_v6 --split validation --quiet
	$(BIN)/sidewalk-robot evaluate --model $(RETRAIN)/sidewalk_seg_v6 --world construction_narrow --quiet
	$(BIN)/sidewalk-robot evaluate --model $(RETRAIN)/sidewalk_seg_v6 --world tiled_street --quiet
	$(BIN)/sidewalk-robot export-onnx --model $(RETRAIN)/sidewalk_seg_v6

bench: install
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

freeze:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^pip==' > requirements.txt.new
	@echo "review requirements.txt.new, then move it over requirements.txt"

clean:
	rm -rf $(VENV) $(ROBOT_VENV) build install log .pytest_cache .hypothesis runs *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
