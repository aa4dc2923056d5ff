# The two set-up commands of the README: `make demo` and `make test`.
# Each bootstraps what it needs (Debian packages, .venv, pinned wheels) by itself.
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: bootstrap demo test test-slow lint bench clean real-music studio

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	@$(VENV)/bin/diffariff demo --out out/demo

# The studio page on http://127.0.0.1:7860 (Ctrl-C stops it); STUDIO_ARGS="--port 8000 --bundle B".
studio: bootstrap
	@$(VENV)/bin/diffariff studio $(STUDIO_ARGS)

test: bootstrap
	@$(VENV)/bin/ruff check src tests benchmarks
	@$(PY) -m pytest -q

test-slow: bootstrap
	@$(PY) -m pytest -q -m slow

lint: bootstrap
	@$(VENV)/bin/ruff check src tests benchmarks

bench: bootstrap
	@$(PY) benchmarks/run_all.py

# Real recorded music (Debian game soundtracks) as plain mixtures in data/real/ (symlinks).
real-music:
	@bash scripts/install_real_music.sh

clean:
	rm -rf out .pytest_cache .ruff_cache
