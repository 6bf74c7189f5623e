# Thin wrapper: the two README commands and a few conveniences.
.PHONY: all demo test build clean format check-style check-builds fuzz fuzz-quick readme-check config
all: build
build:
	scripts/bootstrap.sh
	cmake -S . -B build >/dev/null
	cmake --build build -j $$(nproc)
demo: build
	build/loyaltyctl demo
test:
	scripts/test.sh
# libFuzzer targets (clang; build-fuzz/, corpora kept there):
# FUZZ_SECONDS per target, one target at a time.
FUZZ_SECONDS ?= 600
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh
fuzz-quick:
	scripts/fuzz.sh --quick
clean:
	rm -rf build build-asan build-matrix
# .clang-format on every C file; check-style also keeps features/ and
# models/ pure (scripts/check-style.sh, the first step of make test)
format:
	scripts/check-style.sh --fix
check-style:
	scripts/check-style.sh
# Debug, RelWithDebInfo and Release with gcc and clang, every target,
# warnings as errors (build-matrix/; make test builds the gcc ones itself)
check-builds:
	scripts/check-builds.sh
# Every command of README.md as written, in private namespaces
# (scripts/readme-commands says how each one runs); FULL=1 also runs the
# long ones (benchmarks, full faults, fuzzing) to their end.
readme-check: build
	scripts/readme-check.sh $(if $(FULL),--full)

# The fault suite (docs/faults.md): the real loyaltyd under kill -9, Redis
# and Kafka faults and hostile input. FAULTS_ARGS="--seed N kill9" replays.
.PHONY: faults faults-quick
faults:
	cmake -S . -B build >/dev/null
	cmake --build build -j2 --target loyaltyd loy_faults
	build/loy_faults $(FAULTS_ARGS)
faults-quick:
	cmake -S . -B build >/dev/null
	cmake --build build -j2 --target loyaltyd loy_faults
	build/loy_faults --quick $(FAULTS_ARGS)

# The shipped config and docs/configuration.md, from the settings tables
# and config/loyaltyd.conf.in (test_config fails when they are stale).
.PHONY: config
config:
	cmake -S . -B build >/dev/null
	cmake --build build -j2 --target loyaltyctl
	build/loyaltyctl config -t config/loyaltyd.conf.in > config/loyaltyd.conf
	build/loyaltyctl config --markdown > docs/configuration.md
