#!/usr/bin/env bash
# The Debian packages nmpu-cosim uses beside its PyPI ones, each with the file that shows it is there:
#   iverilog       the second simulator (`nmpu verify --sim icarus`)
#   liblz4-dev     Verilator's FST waveform writer (`--waves`)
#   nextpnr-ice40  place and route for `nmpu synth --target ice40` (fmax)
#   opensta        static timing and power analysis (`sta`) of `nmpu synth`'s PPA figures
# and the data files of qflow-tech-osu018 (the OSU 0.18 um cells: Liberty, Verilog models), taken out of
# the .deb into the virtual environment (argument 1: its folder) without installing qflow, which the
# package depends on but the project does not use. Skipped where the package is installed.
# Checked on every `make install` (a few ms); installed with apt-get when this runs as root, otherwise
# one line says what to install. No test skips for a missing tool: `make install` brings it.
set -euo pipefail
need=(
  "iverilog:/usr/bin/iverilog"
  "iverilog:/usr/bin/vvp"
  "liblz4-dev:/usr/include/lz4.h"
  "nextpnr-ice40:/usr/bin/nextpnr-ice40"
  "opensta:/usr/bin/sta"
)
venv=${1:-.venv}
osu=usr/share/qflow/tech/osu018/osu018_stdcells.lib
osu018() {
  [ -e "/$osu" ] || [ -e "$venv/$osu" ] && return 0
  local tmp; tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -q qflow-tech-osu018 >/tmp/nmpu-apt-osu.log 2>&1) ||
     { [ "$(id -u)" -eq 0 ] && apt-get update -q >>/tmp/nmpu-apt-osu.log 2>&1 &&
       (cd "$tmp" && apt-get download -q qflow-tech-osu018 >>/tmp/nmpu-apt-osu.log 2>&1); }; then
    dpkg-deb -x "$tmp"/qflow-tech-osu018_*.deb "$venv" && echo "make install: OSU 0.18 um cells -> $venv/${osu%/*}"
  else
    echo "make install: could not download Debian's qflow-tech-osu018 (log /tmp/nmpu-apt-osu.log): run" \
         "'apt-get download qflow-tech-osu018 && dpkg-deb -x qflow-tech-osu018_*.deb $venv' and make again" >&2
    rm -rf "$tmp"; exit 1
  fi
  rm -rf "$tmp"
}
missing=()
for entry in "${need[@]}"; do
  pkg=${entry%%:*} file=${entry#*:}
  if [ ! -e "$file" ] && [[ " ${missing[*]-} " != *" $pkg "* ]]; then missing+=("$pkg"); fi
done
[ ${#missing[@]} -eq 0 ] && { osu018; exit 0; }
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "make install: installing Debian packages ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/nmpu-apt.log 2>&1; }
  # a fresh machine's package lists may be stale or empty: update once, then retry
  apt_install || { apt-get update -q >>/tmp/nmpu-apt.log 2>&1 && apt_install; } || {
    echo "make install: apt-get install ${missing[*]} failed; its log (/tmp/nmpu-apt.log) ends:" >&2
    tail -n 5 /tmp/nmpu-apt.log >&2; exit 1; }
else
  echo "make install: needs the Debian packages ${missing[*]}: run 'sudo apt-get install ${missing[*]}' and make again" >&2
  exit 1
fi
osu018
