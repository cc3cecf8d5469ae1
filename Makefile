# ai-band: `make demo` runs the daemon driven as a plugin would; `make test` runs the tests.
# Both set everything up themselves on a fresh Debian machine (as root).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
APT_PACKAGES = jackd2 libjack-jackd2-0 liblo-tools python3-venv python3-dev build-essential libasound2-dev pkg-config \
               libfluidsynth3 fluid-soundfont-gm libportaudio2

.PHONY: setup system-deps demo test bench bench-gen bench-cli bench-hostile bench-fuzz quality clean

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "please install (as root): apt-get install $$missing"; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,link]'
	touch $@

setup: system-deps $(VENV)/.installed

demo: setup
	$(PY) -m ai_band.testing.demo --output-dir demo-output

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench.tempo_lock

bench-gen: setup
	$(PY) -m bench.gen_speed

# The command line against MMA and FluidSynth's own command line (Debian packages), and the daemon's start.
bench-cli: setup
	@for tool in mma fluidsynth; do command -v $$tool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$tool >/dev/null; done
	$(PY) -m bench.cli_speed
	$(PY) -m bench.daemon_start

# Issue 15: the tempo lock while a hostile sender attacks (3 runs, 3-minute fuzz each), and 10^6 fuzzed datagrams.
bench-hostile: setup
	$(PY) -m bench.hostile --runs 3 --fuzz-s 180

bench-fuzz: setup
	$(PY) -m bench.fuzz --count 1000000

# Quality against real music: MMA (Debian package) and music21's corpus (PyPI wheel).
quality: setup
	@command -v mma >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mma >/dev/null
	$(PY) -m pip install -q 'music21>=9.1'
	$(PY) -m bench.quality --write-docs

clean:
	rm -rf $(VENV) demo-output bench/results
