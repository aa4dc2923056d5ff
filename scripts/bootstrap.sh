#!/usr/bin/env bash
# Bootstrap everything diffariff needs on a fresh Debian machine, idempotently:
#   1. the Debian packages (FluidSynth, General MIDI soundfonts, ffmpeg for the Opus comparison),
#      installed when missing and we are root, else a clear message naming them;
#   2. a project virtualenv in .venv with the pinned wheels (CPU torch==2.13.0) and diffariff
#      installed in editable mode.
# A stamp file keyed on pyproject.toml skips step 2 when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# FluidSynth (command line and libfluidsynth3 for pyfluidsynth), every General MIDI bank Debian ships
# except the one reserved for held-out evaluation (musescore-general-soundfont*), ffmpeg for Opus,
# Chromium and its driver for the studio's browser test.
APT_PACKAGES=(fluidsynth libfluidsynth3 fluid-soundfont-gm fluid-soundfont-gs fluidr3mono-gm-soundfont
              timgm6mb-soundfont csound-soundfont opl3-soundfont avldrums.lv2-soundfont ffmpeg
              chromium chromium-driver)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing Debian packages: ${missing[*]} -- install them with: sudo apt-get install ${missing[*]}" >&2
    exit 2
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=.venv
STAMP="$VENV/.diffariff-installed"
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "bootstrap: installing Python packages into $VENV (CPU torch==2.13.0)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and alone, pinned: the CPU build from this machine's disk or the CPU index.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  echo "$want" > "$STAMP"
fi
