# The two commands a newcomer needs:
#   make demo   installs what is missing, builds, runs the main job on built-in data
#   make test   builds and runs every test (C++ via ctest, Python interop included)
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

# Debian packages the build, the tests and the demo need. Checked with dpkg and
# installed only when missing, so repeated runs cost nothing.
DEB_PACKAGES := cmake ninja-build g++ make libtorch-dev libgloo-dev libdnnl-dev \
  libnifti2-dev libavformat-dev libavcodec-dev libswscale-dev libturbojpeg0-dev \
  nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev python3-torch \
  pkg-config libavutil-dev ffmpeg python3-nibabel python3-dipy python3-imageio \
  insighttoolkit5-examples python3-pytest python3-onnx python3-torchvision \
  python3-venv python3-pip python3-setuptools python3-wheel

.PHONY: all deps configure build test demo bench architecture format clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing missing Debian packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 1

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
	rm -rf $(BUILD)
