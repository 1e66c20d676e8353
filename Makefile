# NTC top-level build.  Host programs are C++20 (CMake, in build/), the guest
# module is Kbuild against the guest kernel's headers, guest disks are built
# by scripts/build-guest-disk.sh.  See README.md and Documentation/testing.md.

BUILD      ?= build
JOBS       ?= $(shell nproc)
GUEST_KREL ?= $(shell ls /usr/lib/modules 2>/dev/null | sort -V | tail -n1)
CMAKE_TYPE ?= RelWithDebInfo
PREFIX     ?= /usr/local

.PHONY: all deps host kmod install deb guest test unit-test guest-test bench stress demo demo-dr clean format format-check

all: host kmod

deps:
	@sh scripts/install-deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(CMAKE_TYPE)

host: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

kmod:
	$(MAKE) -C kmod KREL=$(GUEST_KREL)

# The host tools and their man pages; debian/rules uses the same CMake rules.
install: host
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# ntc-dkms and ntc-tools (Documentation/packaging.md), built from a copy of
# the tracked files, so that nothing untracked is packaged and nothing is
# written outside $(BUILD)/deb; lintian's errors fail the target.  The
# package build gets none of this make's variables: BUILD=... would reach
# every make it runs.
DEB_VERSION = $(shell dpkg-parsechangelog -S Version)
DEB_TREE    = $(BUILD)/deb/ntc-$(DEB_VERSION)

deb:
	rm -rf $(BUILD)/deb
	mkdir -p $(DEB_TREE)
	git ls-files -z | tar --null --files-from=- -cf - | tar -xf - -C $(DEB_TREE)
	cd $(DEB_TREE) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL DEB_BUILD_OPTIONS=parallel=$(JOBS) \
		dpkg-buildpackage -us -uc -b
	lintian --display-info --fail-on error $(BUILD)/deb/ntc_$(DEB_VERSION)_$$(dpkg --print-architecture).changes

# Each test runs once: a failure is a bug to find, never retried away
# (Documentation/testing.md, "Known failure modes").  The format check comes
# first: it takes seconds.
test: deps
	$(MAKE) format-check
	$(MAKE) all
	cd $(BUILD) && ctest --output-on-failure --timeout 1800

# Checkpoints in a row and resumes of one saved disk 2 in the nested lab, on
# ntc-vmm and on the QEMU/KVM baseline; not part of make test (most of an
# hour).  STRESS="--checkpoints 5 --resumes 3 --vmm ntc-vmm" for a short run.
stress: deps
	$(MAKE) all
	python3 tests/stress/stress.py $(STRESS)

bench: deps
	$(MAKE) all
	python3 tests/bench/run.py

demo: deps
	$(MAKE) all
	python3 scripts/demo.py

# Disaster recovery: the office VM checkpoints itself while it works, each
# checkpoint is shipped to a copy, and the copy's latest resumes.
demo-dr: deps
	$(MAKE) all
	python3 scripts/demo_dr.py

# All host C++ (userland/, vmm/) follows the top-level .clang-format, as
# Debian 12's clang-format 14 applies it (other versions format a few things
# differently); kmod/ and disk-layout/ follow the kernel's style.
CLANG_FORMAT ?= clang-format
FORMAT_FILES = $(shell find userland vmm -name '*.cpp' -o -name '*.h' | LC_ALL=C sort)

format:
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

format-check:
	@command -v $(CLANG_FORMAT) >/dev/null || \
		{ echo "format-check: $(CLANG_FORMAT) not found; make deps installs it" >&2; exit 1; }
	@$(CLANG_FORMAT) --version | grep -q 'version 14\.' || \
		echo "format-check: warning: .clang-format is checked with clang-format 14, this is" \
			"$$($(CLANG_FORMAT) --version)" >&2
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	if $(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES) 2>"$$log"; then \
		echo "format-check: host C++ follows .clang-format"; exit 0; \
	fi; \
	grep -e '-Wclang-format-violations' "$$log" | awk -F: '!seen[$$1]++' | head -n 20 >&2; \
	files=$$(grep -e '-Wclang-format-violations' "$$log" | cut -d: -f1 | sort -u | wc -l); \
	echo "format-check: FAILED: $$files files of host C++ do not follow .clang-format" \
		"(above: the first place in each, up to 20 files)." >&2; \
	echo "format-check: run 'make format' to reformat userland/ and vmm/, then commit the result." >&2; \
	exit 1

clean:
	rm -rf $(BUILD)
	$(MAKE) -C kmod clean KREL=$(GUEST_KREL)
