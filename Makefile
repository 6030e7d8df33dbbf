# The two commands a newcomer needs:
#   make demo   installs what is missing, builds, runs the main job on built-in data
#   make test   builds and runs every test (C++ via ctest, Python interop included)
# Reliability (docs/RELIABILITY.md):
#   make test-sanitize   the whole suite built with ASan + UBSan ($(SAN_BUILD)/)
#   make fuzz            every parser fuzzed FUZZ_SECONDS each ($(FUZZ_BUILD)/)
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

# Debian packages the build, the tests and the demo need, each used by name
# (compilers and build tools; the libraries CMakeLists.txt finds; python3-torch
# and the Python packages tests/python imports; ffmpeg, which tests call to
# write videos; the sample data of python3-nibabel, python3-dipy,
# python3-imageio and insighttoolkit5-examples; venv, pip, setuptools and
# wheel for the pip-install test; ocl-icd-opencl-dev because oneDNN's CMake
# config requires OpenCL, which libdnnl-dev only recommends). Checked with
# dpkg and installed only when missing, so repeated runs cost nothing, and
# without their recommendations, which nothing else here uses: on a minimal
# Debian 12 (debootstrap --variant=minbase) they added 242 packages (VTK,
# Qt 5, LLVM 14, Open MPI, Mesa drivers; 752 packages and 4.7 GB instead of
# 510 and 3.1 GB) and `make deps` took 24 min instead of 15 (2026-12-01,
# 2 cores shared with other builds; README, "Two commands").
DEB_PACKAGES := cmake ninja-build g++ make libtorch-dev libgloo-dev libdnnl-dev \
  libnifti2-dev libavformat-dev libavcodec-dev libswscale-dev libturbojpeg0-dev \
  nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev python3-torch \
  pkg-config libavutil-dev ffmpeg python3-nibabel python3-dipy python3-imageio \
  insighttoolkit5-examples python3-pytest python3-onnx python3-torchvision \
  python3-venv python3-pip python3-setuptools python3-wheel ocl-icd-opencl-dev
# Only `make fuzz` needs these (clang with libFuzzer and its sanitizer
# runtimes); test and demo do not install them.
FUZZ_PACKAGES := clang libfuzzer-14-dev libclang-rt-14-dev

.PHONY: all deps fuzz-deps configure build test test-sanitize fuzz demo bench architecture format clean

all: build

# $(call install_missing,PACKAGES)
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing missing Debian packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PACKAGES))

fuzz-deps:
	$(call install_missing,$(FUZZ_PACKAGES))

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 1

# ASan + UBSan: the same suite, built -O1 with the project's compiler (gcc)
# in its own folder. Leaks LibTorch makes at start-up (registries it never
# frees) are suppressed by tools/sanitize/lsan.supp, which names LibTorch's
# functions only: a leak with our code on its stack is reported. The Python
# interop test runs under CPython, which is not instrumented: the sanitizer
# runtimes are preloaded into it (CAKES_SANITIZER_PRELOAD) and leak checking
# is off for that process, since CPython frees nothing at exit.
SAN_BUILD ?= build-sanitize
SAN_FLAGS := -O1 -g1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
test-sanitize: export ASAN_OPTIONS = detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0
test-sanitize: export LSAN_OPTIONS = suppressions=$(CURDIR)/tools/sanitize/lsan.supp:print_suppressions=0
test-sanitize: export UBSAN_OPTIONS = print_stacktrace=1:halt_on_error=1
test-sanitize: deps
	cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=None \
	  -DCMAKE_CXX_FLAGS="$(SAN_FLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
	  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
	  -DCAKES_BUILD_BENCHMARKS=OFF \
	  -DCAKES_SANITIZER_PRELOAD="$$(g++ -print-file-name=libasan.so):$$(g++ -print-file-name=libubsan.so)"
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ctest --output-on-failure -j 1

# libFuzzer targets (fuzz/): a clang build of the parsers alone, a seed
# corpus made from Debian's sample files and files the project writes, then
# each target for FUZZ_SECONDS. A crash stops with the reproducer's path.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= nifti jpeg video msd_json config network_config trn_list ssv2 zip checkpoint torch_file
fuzz: deps fuzz-deps
	CXX=clang++-14 cmake -S fuzz -B $(FUZZ_BUILD) -G Ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	fuzz/make_corpus.sh $(FUZZ_BUILD)
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

demo: build
	$(BUILD)/cakes-demo --out demo_out

bench: build
	$(BUILD)/cakes bench layer --in 64 --out 64 --input 1x8x56x56 --split 3x3x3:22,1x3x3:21,3x1x1:21
	$(BUILD)/cakes bench layer --in 64 --out 64 --input 1x8x56x56 --split 1x3x3:32,3x1x1:32

# docs/architecture.svg from the build's own target graph (cmake --graphviz,
# CMakeGraphVizOptions.cmake); needs Graphviz's dot, installed when missing.
architecture: configure
	@command -v dot >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q --no-install-recommends graphviz; }
	cmake --graphviz=$(BUILD)/graph/cakes.dot $(BUILD) >/dev/null
	dot -Tsvg $(BUILD)/graph/cakes.dot -o docs/architecture.svg

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)
