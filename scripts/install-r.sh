#!/usr/bin/env bash
# Install the linpert R package for this user, with the core Python package it calls, in one command:
#   bash scripts/install-r.sh
# Debian's R packages (as setup.sh --with-r), then the core Python package (no deep-learning stacks, about 0.7 GB)
# in its own environment where the R package looks for it, tools::R_user_dir("linpert", "data")/python, and the
# R package into the user's R library (R_LIBS_USER). Run it again after `git pull` to update both.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# tools::R_user_dir("linpert", "data"), computed before R is installed
python_dir=${R_USER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}}/R/linpert/python
LINPERT_VENV=$python_dir "$root/scripts/setup.sh" --with-r --no-editable ""
library=$(Rscript -e 'cat(Sys.getenv("R_LIBS_USER"))')
mkdir -p "$library"
R CMD INSTALL --no-test-load --library="$library" "$root" >"$python_dir/r-install.log" 2>&1 \
    || { cat "$python_dir/r-install.log"; exit 1; }
Rscript -e 'library(linpert); cat("linpert", as.character(packageVersion("linpert")), "for R, with Python",
            linpert_python_path(), "\n"); stopifnot(linpert_available())'
