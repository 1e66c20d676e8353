# NTC top-level build.  Host programs are C++20 (CMake, in build/), the guest
# module is Kbuild against the guest kernel's headers, guest disks are built
# by scripts/build-guest-disk.sh.  See README.md and Documentation/testing.md.

BUILD      ?= build
JOBS       ?= $(shell nproc)
GUEST_KREL ?= $(shell ls /usr/lib/modules 2>/dev/null | sort -V | tail -n1)
CMAKE_TYPE ?= RelWithDebInfo

.PHONY: all deps host kmod guest test unit-test guest-test bench stress demo clean

all: host kmod

deps:
	@sh scripts/install-deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(CMAKE_TYPE)

host: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

kmod:
	$(MAKE) -C kmod KREL=$(GUEST_KREL)

# Each test runs once: a failure is a bug to find, never retried away
# (Documentation/testing.md, "Known failure modes").
test: deps
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

clean:
	rm -rf $(BUILD)
	$(MAKE) -C kmod clean KREL=$(GUEST_KREL)
