# Thin wrapper: the two README commands and a few conveniences.
.PHONY: all demo test build clean format
all: build
build:
	scripts/bootstrap.sh
	cmake -S . -B build >/dev/null
	cmake --build build -j $$(nproc)
demo: build
	build/loyaltyctl demo
test:
	scripts/test.sh
clean:
	rm -rf build build-asan
format:
	clang-format -i */*.c */*.h
