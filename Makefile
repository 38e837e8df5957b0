# Two commands: `make demo` and `make test`. Both create or reuse .venv (Python 3.11),
# install the pinned requirements, build the message packages the pip ROS lacks, then run.
# Setup steps are stamped, so a second run starts working in seconds.

PYTHON ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
ISOLATED := scripts/run_isolated.sh
PYTEST_ARGS ?=

.PHONY: setup test test-all lint demo bench clean distclean help

help:
	@echo "make demo      set up, then replay the embedded drive through the pipeline"
	@echo "make test      set up, then run the default test suite (slow tests excluded)"
	@echo "make test-all  also run tests marked slow"
	@echo "make lint      ruff over the package, tests and scripts"

$(VENV)/.stamp-system: scripts/install_system_deps.sh
	@mkdir -p $(VENV)
	bash scripts/install_system_deps.sh
	@touch $@

$(VENV)/.stamp-deps: requirements.txt $(VENV)/.stamp-system
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.stamp-interfaces: $(VENV)/.stamp-deps scripts/build_interfaces.sh \
		$(wildcard interfaces/*/msg/*.msg interfaces/*/CMakeLists.txt)
	bash scripts/build_interfaces.sh $(VENV)
	@touch $@

$(VENV)/.stamp-package: $(VENV)/.stamp-interfaces setup.py setup.cfg package.xml
	$(VPY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

setup: $(VENV)/.stamp-package

test: setup
	$(ISOLATED) $(VPY) -m pytest -q $(PYTEST_ARGS)

test-all: setup
	$(ISOLATED) $(VPY) -m pytest -q -m "" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check ad_perception test scripts launch

demo: setup
	$(ISOLATED) $(VENV)/bin/ad-perception demo

clean:
	rm -rf build install log .pytest_cache

distclean: clean
	rm -rf $(VENV)
