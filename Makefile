# Two commands: `make demo` and `make test`. Both install everything into .venv first (idempotent).
VENV    ?= .venv
PY      := $(VENV)/bin/python
UV      := $(VENV)/bin/uv
STAMP   := $(VENV)/.installed
OPENCV  := opencv-contrib-python-headless==4.12.0.88
DEMO_OUT ?= out/demo

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade uv
	$(UV) pip install --python $(PY) -e '.[dev]'
	@# insightface and rtmlib ask for opencv-python, controlnet_aux for the headless build: all write cv2/.
	@# Remove every variant, then keep exactly one.
	$(UV) pip uninstall --python $(PY) opencv-python opencv-contrib-python opencv-python-headless opencv-contrib-python-headless
	$(UV) pip install --python $(PY) --no-deps --reinstall $(OPENCV)
	$(PY) -c "import cv2, torch, torchvision, ray, faiss, open_clip; print('cv2', cv2.__version__, '| torch', torch.__version__, '| ray', ray.__version__)"
	@# Headless Chromium renders the reviewers' contact sheet in the tests (Debian's package; needs root or sudo).
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	touch $(STAMP)

demo: install
	$(VENV)/bin/datagen run configs/demo.yaml output.dir=$(DEMO_OUT)
	$(VENV)/bin/datagen validate $(DEMO_OUT)
	$(VENV)/bin/datagen stats $(DEMO_OUT)

test: install
	$(PY) -m pytest -q -m "not cluster"
	$(PY) -m pytest -q -m cluster

test-fast: install
	$(PY) -m pytest -q -m "not slow and not cluster"

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf out .pytest_cache
