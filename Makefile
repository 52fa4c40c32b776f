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

# Three workers, each with a pool of its own, take whole modules (--dist loadfile: a module's instances and fixtures
# stay in one pool). Most of a module's time is HTCondor's fixed waits, not CPU, so three pools on two cores cut the
# wall time to about a third (the longest module bounds it: keep modules under about 8 minutes).
INTEGRATION_WORKERS ?= 3
check-integration: $(HOST_STAMP)
	$(VPY) -m pytest -q -n $(INTEGRATION_WORKERS) --dist loadfile tests/integration

# The README's main command: a single-host cloud in the sandbox with one booted instance and the API.
demo: $(HOST_STAMP)
	$(VPY) tests/sandbox/demo.py up

demo-stop:
	python3 tests/sandbox/demo.py down

# ------------------------------------------------------------------------------------------------
# Packaging and installation (issue 4). The specs' %install calls install-master / install-node with
# the distribution's directories; the sandbox calls them with DESTDIR=<root>. See docs/fedora_install.txt.
# ------------------------------------------------------------------------------------------------
PREFIX        ?= /usr
BINDIR        ?= $(PREFIX)/bin
SYSCONFDIR    ?= /etc
LIBEXECDIR    ?= $(PREFIX)/libexec
DATADIR       ?= $(PREFIX)/share
LOCALSTATEDIR ?= /var
UNITDIR       ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR   ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR   ?= $(PREFIX)/lib/tmpfiles.d
CONFIGDIR     ?= $(SYSCONFDIR)/condor/config.d
STATEDIR      ?= $(LOCALSTATEDIR)/lib/condor-cloud
# Where install-pylib-ROLE copies its part of condor_cloud/: core (condor_cloud/__init__.py and core/, shared), master
# (master/) or node (node/). install-master and install-node copy core and their role's part when INSTALL_PYLIB=yes;
# the RPMs pass INSTALL_PYLIB=no (condor-cloud.spec installs core and master with %pyproject_install;
# condor-cloud-node.spec calls install-pylib-node itself). Default: $(PYTHON)'s system site dir: Debian's
# version-independent dist-packages (deb_system scheme, so the Debian 13 sandbox's 3.13 finds it), else purelib
# under $(PREFIX).
INSTALL_PYLIB ?= yes
PYTHONSITEDIR ?= $(shell $(PYTHON) -c 'import sysconfig as s; n = "deb_system" if "deb_system" in s.get_scheme_names() else "posix_prefix"; print(s.get_path("purelib", n, vars={"base": "$(PREFIX)", "platbase": "$(PREFIX)"}))')

INSTALL       ?= install
RPMBUILD      ?= rpmbuild
RPMLINT       ?= rpmlint
BUILDDIR      ?= build
RPMDIR        ?= $(BUILDDIR)/rpm
SPECS         := condor-cloud.spec condor-cloud-node.spec
NODE_VERSION  := $(shell sed -n 's/^Version:[[:space:]]*//p' condor-cloud-node.spec 2>/dev/null)
TARBALL       := $(BUILDDIR)/$(NAME)-$(VERSION).tar.gz
# What the tarball holds: everything the specs build, install, document and test (%check), as found in
# the working tree (tracked or not, minus .gitignore'd files), so `make rpm` packages what you see.
DIST_PATHS    := LICENSE Makefile setup.py pyproject.toml $(SPECS) condor_cloud bin hooks libexec templates config.d \
                 packaging docs systemd README.md tests/conftest.py tests/public_keys.py tests/unit tests/data tests/requirements.txt

# Local builds on Debian: Fedora's python/systemd macros come from packaging/rpm-macros.debian, build
# dependencies are not in an rpm database, and %check is skipped (`make check-unit` runs the same tests).
# `make rpm RPM_CHECK=yes` runs %check here too, with the test venv's pytest (make check-unit sets it up).
RPM_CHECK     ?= no
ifneq ($(wildcard /etc/debian_version),)
ifeq ($(RPM_CHECK),yes)
RPMBUILD_LOCAL ?= --load=$(CURDIR)/packaging/rpm-macros.debian --nodeps --with=check \
                  --define "__pytest $(abspath $(VPY)) -m pytest"
else
RPMBUILD_LOCAL ?= --load=$(CURDIR)/packaging/rpm-macros.debian --nodeps --without=check
endif
endif
RPMBUILD_ARGS = --define "_topdir $(abspath $(RPMDIR))" --define "_sourcedir $(abspath $(BUILDDIR))" \
                $(RPMBUILD_LOCAL) $(RPMBUILD_EXTRA)

# Config snippets name install paths; rewrite them to the directories this install uses. ($(LIBEXEC) is
# HTCondor's own libexec, /usr/libexec/condor, not ours.)
SUBST_PATHS = sed -e 's|$$(LIBEXEC)/condor-cloud|$(LIBEXECDIR)/condor-cloud|g' \
                  -e 's|/usr/libexec/condor-cloud|$(LIBEXECDIR)/condor-cloud|g' \
                  -e 's|/usr/share/condor-cloud|$(DATADIR)/condor-cloud|g' \
                  -e 's|/var/lib/condor-cloud|$(STATEDIR)|g' \
                  -e 's|/usr/bin/condor-cloud|$(BINDIR)/condor-cloud|g'
# install_program SRC DEST: mode 0755, shebang -> $(PYTHON), timestamp kept
define install_program
	$(INSTALL) -Dpm 0755 $(1) $(DESTDIR)$(2)
	sed -i -e '1s|^#!.*python.*$$|#!$(PYTHON)|' $(DESTDIR)$(2)
	touch -r $(1) $(DESTDIR)$(2)
endef
define install_config
	$(INSTALL) -d -m 0755 $(DESTDIR)$(CONFIGDIR)
	$(SUBST_PATHS) $(1) > $(DESTDIR)$(CONFIGDIR)/$(notdir $(1))
	chmod 0644 $(DESTDIR)$(CONFIGDIR)/$(notdir $(1))
	touch -r $(1) $(DESTDIR)$(CONFIGDIR)/$(notdir $(1))
endef

.PHONY: dist srpm rpm rpmlint version-check install-pylib-core install-pylib-master install-pylib-node \
        install-common install-master install-node

version-check:
	@test -n "$(VERSION)" || { echo "no Version: in condor-cloud.spec"; exit 1; }
	@test "$(VERSION)" = "$(NODE_VERSION)" || \
	  { echo "Version: differs: condor-cloud.spec $(VERSION), condor-cloud-node.spec $(NODE_VERSION)"; exit 1; }

dist: version-check
	@mkdir -p $(BUILDDIR)
	rm -f $(TARBALL)
	{ git ls-files -co --exclude-standard -- $(DIST_PATHS) 2>/dev/null || \
	  find $(wildcard $(DIST_PATHS)) -type f ! -path '*/__pycache__/*' ! -name '*.pyc'; } | sort -u | \
	  while read -r f; do if [ -f "$$f" ]; then echo "$$f"; fi; done > $(BUILDDIR)/dist-files
	tar --create --gzip --file $(TARBALL) --files-from $(BUILDDIR)/dist-files --sort=name \
	    --owner=0 --group=0 --numeric-owner --mode='u+rw,go+r,go-w' \
	    --mtime="@$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)}" \
	    --transform 's|^|$(NAME)-$(VERSION)/|'
	@echo "$(TARBALL)"

srpm: dist
	for s in $(SPECS); do $(RPMBUILD) -bs $(RPMBUILD_ARGS) $$s || exit 1; done
	@ls $(RPMDIR)/SRPMS/*-$(VERSION)-*.src.rpm

rpm: dist
	for s in $(SPECS); do $(RPMBUILD) -ba $(RPMBUILD_ARGS) $$s || exit 1; done
	@ls $(RPMDIR)/RPMS/noarch/*-$(VERSION)-*.noarch.rpm
	$(MAKE) --no-print-directory rpmlint

# rpmlint on the specs and the binary RPMs of this version (one run, so that every accepted finding in
# packaging/rpmlintrc must still occur: rpmlint reports unused filters as errors), then on each source
# RPM alone (checked together, rpmlint 2.4 sees both specs in one SRPM). Config: packaging/rpmlint.toml.
rpmlint:
	$(RPMLINT) -c packaging/rpmlint.toml -r packaging/rpmlintrc $(SPECS) \
	    $(wildcard $(RPMDIR)/RPMS/noarch/*-$(VERSION)-*.noarch.rpm)
	for s in $(wildcard $(RPMDIR)/SRPMS/*-$(VERSION)-*.src.rpm); do \
	    $(RPMLINT) -c packaging/rpmlint.toml $$s || exit 1; done

# The Python library, by role: core -> python3-condor-cloud, master -> condor-cloud, node -> condor-cloud-node.
# install_pylib FILES...: copy them (mode 0644) under $(PYTHONSITEDIR).
define install_pylib
	find $(1) -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | sort | while read -r f; do \
	    $(INSTALL) -Dpm 0644 "$$f" "$(DESTDIR)$(PYTHONSITEDIR)/$$f" || exit 1; done
endef
install-pylib-core:
	$(call install_pylib,condor_cloud/__init__.py condor_cloud/core)
install-pylib-master:
	$(call install_pylib,condor_cloud/master)
install-pylib-node:
	$(call install_pylib,condor_cloud/node)

# What both roles install (python3-condor-cloud in the RPMs): the core, and `condor-cloud`, which offers the
# commands of whichever roles are installed. condor-cloud-node.spec passes INSTALL_CORE=no (condor-cloud.spec
# builds python3-condor-cloud).
INSTALL_CORE ?= yes
install-common:
ifeq ($(INSTALL_CORE),yes)
ifeq ($(INSTALL_PYLIB),yes)
	$(MAKE) --no-print-directory install-pylib-core
endif
	$(call install_program,bin/condor-cloud,$(BINDIR)/condor-cloud)
endif

install-master: install-common
ifeq ($(INSTALL_PYLIB),yes)
	$(MAKE) --no-print-directory install-pylib-master
endif
	$(call install_config,config.d/20condor_cloud_master.config)
	$(call install_config,config.d/22condor_cloud_quotas.config)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(STATEDIR)/shared_images $(DESTDIR)$(STATEDIR)/shared_images/staging
	$(INSTALL) -Dpm 0644 packaging/condor-cloud.tmpfiles $(DESTDIR)$(TMPFILESDIR)/condor-cloud.conf
	@: API server and the administrator CLI
	$(call install_config,config.d/25condor_cloud_api.config)
	$(call install_program,bin/condor-cloud-api,$(BINDIR)/condor-cloud-api)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(UNITDIR)
	$(SUBST_PATHS) systemd/condor-cloud-api.service > $(DESTDIR)$(UNITDIR)/condor-cloud-api.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/condor-cloud-api.service
	touch -r systemd/condor-cloud-api.service $(DESTDIR)$(UNITDIR)/condor-cloud-api.service
	@: hourly sweep of interrupted image adds in the image store staging directory: condor-cloud image sweep
	for u in condor-cloud-image-sweep.service condor-cloud-image-sweep.timer; do \
	    $(SUBST_PATHS) systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u && \
	    touch -r systemd/$$u $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	$(INSTALL) -Dpm 0644 systemd/condor-cloud-api.sysusers $(DESTDIR)$(SYSUSERSDIR)/condor-cloud-api.conf
	$(INSTALL) -Dpm 0644 systemd/condor-cloud-api.tmpfiles $(DESTDIR)$(TMPFILESDIR)/condor-cloud-api.conf
	@: owner condor-cloud-api comes from the RPM or from systemd-tmpfiles --create
	$(INSTALL) -d -m 0750 $(DESTDIR)$(STATEDIR)/keys
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/condor-cloud
	@: directory of the API TLS certificate and key, which are made on the host by condor-cloud api-cert create
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/condor-cloud/tls
	@: EC2 Query API: its server, its unit and the access key directory, owned by condor-cloud-api like keys/
	$(call install_program,bin/condor-cloud-ec2,$(BINDIR)/condor-cloud-ec2)
	$(SUBST_PATHS) systemd/condor-cloud-ec2.service > $(DESTDIR)$(UNITDIR)/condor-cloud-ec2.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/condor-cloud-ec2.service
	touch -r systemd/condor-cloud-ec2.service $(DESTDIR)$(UNITDIR)/condor-cloud-ec2.service
	$(INSTALL) -d -m 0750 $(DESTDIR)$(STATEDIR)/ec2

install-node: install-common
ifeq ($(INSTALL_PYLIB),yes)
	$(MAKE) --no-print-directory install-pylib-node
endif
	$(call install_config,config.d/30condor_cloud_node.config)
	$(call install_program,hooks/prepare,$(LIBEXECDIR)/condor-cloud/hooks/prepare)
	$(call install_program,hooks/exit,$(LIBEXECDIR)/condor-cloud/hooks/exit)
	$(call install_program,hooks/cleanup,$(LIBEXECDIR)/condor-cloud/hooks/cleanup)
	$(call install_program,hooks/update,$(LIBEXECDIR)/condor-cloud/hooks/update)
	$(call install_program,libexec/libvirt-xml,$(LIBEXECDIR)/condor-cloud/libvirt-xml)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(DATADIR)/condor-cloud/templates
	$(INSTALL) -pm 0644 templates/* $(DESTDIR)$(DATADIR)/condor-cloud/templates/
	$(INSTALL) -Dpm 0644 packaging/condor-cloud-node.sysusers $(DESTDIR)$(SYSUSERSDIR)/condor-cloud-node.conf
	$(INSTALL) -Dpm 0644 packaging/condor-cloud-node.tmpfiles $(DESTDIR)$(TMPFILESDIR)/condor-cloud-node.conf
	# Owners (condor-cloud:condor-cloud) come from the RPM's %attr or from systemd-tmpfiles --create.
	$(INSTALL) -d -m 2775 $(DESTDIR)$(STATEDIR)/local_cache
	$(INSTALL) -d -m 2771 $(DESTDIR)$(STATEDIR)/instances
	$(INSTALL) -d -m 2770 $(DESTDIR)$(LOCALSTATEDIR)/log/condor-cloud/consoles

# Benchmarks: measurements, not tests. Writes docs/PERFORMANCE.md in about 25 minutes, the real-pool parts (4, 5,
# 6 failures) included; root (it loop-mounts an XFS image for the reflink figures). BENCH_ARGS= skips the pool;
# BENCH_ARGS="--only failures" runs one part and updates only its section.
BENCH_ARGS ?= --pool
bench: $(HOST_STAMP)
	@command -v mkfs.xfs >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xfsprogs >/dev/null; }
	$(VPY) bench/run $(BENCH_ARGS)
