#!/usr/bin/env bash
# Install everything the tests need (once) and run every test: pytest, then the R package's testthat suite.
#   scripts/test.sh [PYTEST_ARGS...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LINPERT_VENV:-$root/.venv}
"$root/scripts/setup.sh" --with-r "test,r,bench,gears,dask,fast,umap"
cd "$root"

# R packages the tests need go into a private library, so the test never touches the user's R library. R's locfdr
# (on CRAN only) comes from ../shared/vendor when it is there, so that the R backend's tests run instead of skipping.
rlib=$root/.venv/R-library
mkdir -p "$rlib"
vendored=$root/../shared/vendor/locfdr_1.1-8.tar.gz
if [[ -f $vendored && ! -d $rlib/locfdr ]]; then
    R CMD INSTALL --library="$rlib" "$vendored" >"$rlib/locfdr-install.log" 2>&1 \
        || { cat "$rlib/locfdr-install.log"; exit 1; }
fi
export R_LIBS="$rlib${R_LIBS:+:$R_LIBS}"

status=0
# The layering contract (pyproject: [tool.importlinter]): no unit imports one above or beside it.
"$venv/bin/lint-imports" || status=1
"$venv/bin/python" -m pytest "$@" || status=$?
[[ $status -eq 5 ]] && { echo "pytest collected no tests" >&2; status=1; }

# The R package as Bioconductor checks it: R CMD check (its tests, examples and vignettes, against this Python)
# and BiocCheck, on the tarball built from the repository's files.
LINPERT_PYTHON="$venv/bin/python" "$root/scripts/check-r.sh" || status=1
exit $status
