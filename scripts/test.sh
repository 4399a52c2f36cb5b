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

# The R package itself goes into the same private library.
R CMD INSTALL --no-test-load --library="$rlib" "$root" >"$rlib/install.log" 2>&1 \
    || { cat "$rlib/install.log"; exit 1; }
LINPERT_PYTHON="$venv/bin/python" \
    Rscript -e 'res <- testthat::test_dir("tests/testthat", package = "linpert", load_package = "installed",
                                           stop_on_failure = TRUE, reporter = "summary")' || status=1

# The vignettes are part of the tests: each must render from a clean R session.
vignettes=$(mktemp -d)
for rmd in "$root"/vignettes/*.Rmd; do
    echo "Rendering $(basename "$rmd")"
    LINPERT_PYTHON="$venv/bin/python" \
        Rscript -e "rmarkdown::render('$rmd', output_dir = '$vignettes', intermediates_dir = tempdir(), quiet = TRUE)" \
        || status=1
done
exit $status
