# Every target works from a fresh clone: the first one that needs Python creates .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.optiq-installed
OPTIQ_TEST_DATA ?= $(abspath ../shared/data)
export OPTIQ_TEST_DATA

# optiq-models pulls torch: constraints.txt pins it to the CPU wheel (an unpinned torch pulls GB of CUDA).
PACKAGES := -e ./optiq-core[test] -e ./optiq-fbx[test] -e ./optiq-models[test,onnx] -e ./optiq-viz[test,png] -e ./optiq-rl[test] -e ./optiq-video[test] \
	-e . -e ./tests/plugins/optiq-example-plugin

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml optiq-core/pyproject.toml optiq-fbx/pyproject.toml optiq-models/pyproject.toml \
		optiq-viz/pyproject.toml optiq-rl/pyproject.toml optiq-video/pyproject.toml constraints.txt \
		tests/plugins/optiq-example-plugin/pyproject.toml tests/js/package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt $(PACKAGES)
	@# The pose estimator (mediapipe 0.10.14 pins protobuf<5, which onnx cannot share) gets its own environment,
	@# .venv/optiq-video, where optiq-video looks for it (docs/video.md). Without it the video tests fail with CI set.
	$(PY) -m optiq_video.env || echo "setup: the pose estimator environment was not created; video input will not work"
	@# The HTML tests open pages in a real headless browser: Debian's chromium, installed when missing.
	command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "setup: chromium not installed (needs root and apt-get); browser tests will skip"
	@# MuJoCo's headless renderer (optiq viz video --policy) needs EGL (or OSMesa): Debian's libegl1, when missing.
	ldconfig -p 2>/dev/null | grep -q -e 'libEGL\.so' -e 'libOSMesa\.so' || { command -v apt-get >/dev/null 2>&1 && \
		[ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 \
		>/dev/null; } || echo "setup: libegl1 not installed (needs root and apt-get); MuJoCo video tests will skip"
	@# three.js (Node) is the FBX writer's third reader (optiq-fbx/tests/test_threejs.py); installed when npm exists.
	if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/js --no-audit --no-fund --loglevel=error; \
	else echo "setup: npm not found; the three.js FBX test will skip (and fail with CI set)"; fi
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/demo.sh $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) out .pytest_cache
