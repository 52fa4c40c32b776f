# Condor Cloud. The Makefile is the install contract (the specs' %install only calls make install-*)
# and the entry point of every test tier. See README.md.

NAME       := condor-cloud
VERSION    := $(shell sed -n 's/^Version:[[:space:]]*//p' condor-cloud.spec 2>/dev/null)
PYTHON     ?= /usr/bin/python3

# Test environment: a venv with the test dependencies, and the host tools the unit tests use for real.
VENV       ?= .venv
VPY        := $(VENV)/bin/python
HOST_STAMP := $(VENV)/.host-ready

.PHONY: all check check-unit check-integration check-python-versions demo demo-stop bench

all:
	@echo "targets: check check-unit check-integration demo demo-stop rpm bench install-master install-node dist"

$(HOST_STAMP): tests/setup-host tests/requirements.txt
	tests/setup-host $(VENV)
	touch $@

check: check-unit check-integration

check-unit: $(HOST_STAMP)
	$(VPY) -m pytest -q tests/unit
	$(VENV)/bin/vermin --no-tips --violations --target=3.9- --exclude-regex '^tests/' condor_cloud hooks libexec >/dev/null \
	  || { echo "code needs a Python newer than 3.9:"; $(VENV)/bin/vermin --no-tips --violations --target=3.9- condor_cloud hooks libexec; exit 1; }

check-integration: $(HOST_STAMP)
	$(VPY) -m pytest -q tests/integration
