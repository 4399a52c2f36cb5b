#!/usr/bin/env bash
# Install what linpert needs on a Debian machine, idempotently:
#   scripts/setup.sh [--with-r] [--no-editable] [EXTRAS]
# --with-r       Debian's R and the R packages the R side and its tests use (only those missing are installed).
# --no-editable  a regular install (a copy), not an editable one that needs this clone to stay.
# EXTRAS     pip extras of linpert to install into .venv, comma-separated (e.g. "test,r").
# Creates .venv (override with LINPERT_VENV) and installs linpert into it in editable mode.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LINPERT_VENV:-$root/.venv}

with_r=0 editable=-e
if [[ ${1:-} == --with-r ]]; then with_r=1; shift; fi
if [[ ${1:-} == --no-editable ]]; then editable=; shift; fi
extras=${1:-}

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_install() {  # install the Debian packages among "$@" that are not installed yet
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    echo "linpert setup: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
    apt_install python3-venv python3-pip
fi

if [[ $with_r -eq 1 ]]; then
    apt_install r-base-core r-base-dev r-cran-reticulate r-cran-testthat r-cran-matrix \
        r-bioc-singlecellexperiment r-bioc-summarizedexperiment r-cran-igraph \
        r-cran-knitr r-cran-rmarkdown r-cran-ggplot2 r-cran-jsonlite pandoc \
        r-bioc-biocstyle r-bioc-bioccheck r-bioc-biocversion r-bioc-delayedarray
fi

if [[ ! -x $venv/bin/python ]]; then
    echo "linpert setup: creating $venv"
    python3 -m venv "$venv"
fi
stamp=$venv/.linpert-installed
want="$(cat "$root/pyproject.toml" | sha1sum | cut -c1-16) [$extras]${editable:- copy $(git -C "$root" rev-parse HEAD 2>/dev/null)}"
if [[ ! -f $stamp ]] || ! grep -qxF -- "$want" "$stamp"; then
    "$venv/bin/python" -m pip install -q --upgrade pip
    spec="$root"; [[ -n $extras ]] && spec="$root[$extras]"
    "$venv/bin/python" -m pip install -q $editable "$spec"
    echo "$want" >> "$stamp"
fi
