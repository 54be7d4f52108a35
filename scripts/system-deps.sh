#!/usr/bin/env bash
# The Debian packages nmpu-cosim uses beside its PyPI ones, each with the file that shows it is there:
#   iverilog       the second simulator (`nmpu verify --sim icarus`)
#   liblz4-dev     Verilator's FST waveform writer (`--waves`)
#   nextpnr-ice40  place and route for `nmpu synth --target ice40` (fmax)
#   opensta        static timing and power analysis (`sta`) of `nmpu synth`'s PPA figures
#   graywolf, qrouter, magic, netgen-lvs, tcl   placement, routing, DRC/GDS/extraction, LVS (`nmpu synth --layout`)
#   chromium, chromium-driver   the headless browser the workbench's browser test drives (`nmpu serve`, Selenium)
#   postgresql     a PostgreSQL server for the workbench's database (`nmpu serve --db postgresql://...`, its test)
# and the files of two packages taken out of their .deb into the virtual environment (argument 1: its
# folder) without installing them (skipped where a package is installed): qflow-tech-osu018 (the OSU
# 0.18 um cells: Liberty, LEF, Verilog and SPICE models, the tools' technology files) and qflow (its
# place-and-route Tcl scripts and blif2BSpice, which `--layout` runs; qflow's own driver is not used and
# would pull Debian's Yosys).
# Checked on every `make install` (a few ms); installed with apt-get when this runs as root, otherwise
# one line says what to install. No test skips for a missing tool: `make install` brings it.
set -euo pipefail
need=(
  "iverilog:/usr/bin/iverilog"
  "iverilog:/usr/bin/vvp"
  "liblz4-dev:/usr/include/lz4.h"
  "nextpnr-ice40:/usr/bin/nextpnr-ice40"
  "opensta:/usr/bin/sta"
  "graywolf:/usr/bin/graywolf"
  "qrouter:/usr/bin/qrouter"
  "magic:/usr/bin/magic"
  "netgen-lvs:/usr/bin/netgen-lvs"
  "tcl:/usr/bin/tclsh"
  "chromium:/usr/bin/chromium"
  "chromium-driver:/usr/bin/chromedriver"
  "postgresql:/usr/lib/postgresql/15/bin/initdb"
  "postgresql:/usr/lib/postgresql/15/bin/pg_ctl"
)
venv=${1:-.venv}
# unpack PACKAGE FILE: the package's files into the venv unless FILE is there (or installed)
unpack() {
  local pkg=$1 file=$2
  [ -e "/$file" ] || [ -e "$venv/$file" ] && return 0
  local tmp; tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -q "$pkg" >/tmp/nmpu-apt-$pkg.log 2>&1) ||
     { [ "$(id -u)" -eq 0 ] && apt-get update -q >>/tmp/nmpu-apt-$pkg.log 2>&1 &&
       (cd "$tmp" && apt-get download -q "$pkg" >>/tmp/nmpu-apt-$pkg.log 2>&1); }; then
    dpkg-deb -x "$tmp"/"${pkg}"_*.deb "$venv" && echo "make install: $pkg's files -> $venv/${file%/*}"
  else
    echo "make install: could not download Debian's $pkg (log /tmp/nmpu-apt-$pkg.log): run" \
         "'apt-get download $pkg && dpkg-deb -x ${pkg}_*.deb $venv' and make again" >&2
    rm -rf "$tmp"; exit 1
  fi
  rm -rf "$tmp"
}
unpacked() {
  unpack qflow-tech-osu018 usr/share/qflow/tech/osu018/osu018_stdcells.lib
  unpack qflow usr/lib/qflow/scripts/place2def.tcl
}
missing=()
for entry in "${need[@]}"; do
  pkg=${entry%%:*} file=${entry#*:}
  if [ ! -e "$file" ] && [[ " ${missing[*]-} " != *" $pkg "* ]]; then missing+=("$pkg"); fi
done
[ ${#missing[@]} -eq 0 ] && { unpacked; exit 0; }
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
unpacked
