#!/usr/bin/env bash
# The R package as Bioconductor would check it: build the tarball from the repository's files (vignettes built),
# then R CMD check and BiocCheck on that tarball. The tests, examples and vignettes run against the Python named by
# LINPERT_PYTHON (required: a missing Python is an error here, not a skip). Fails on any ERROR or WARNING.
#   LINPERT_PYTHON=.venv/bin/python scripts/check-r.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${LINPERT_PYTHON:?set LINPERT_PYTHON to a Python with linpert (scripts/setup.sh makes .venv/bin/python)}"
export LINPERT_PYTHON _R_CHECK_FORCE_SUGGESTS_=true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The files git knows (tracked, or new and not ignored): never a local .venv, data or results.
mkdir "$work/linpert"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/linpert")
cd "$work"

R CMD build linpert >build.log 2>&1 || { cat build.log; exit 1; }
tarball=$(ls linpert_*.tar.gz)
echo "Built $tarball"

# The vignettes were executed by the build; the check runs their R code again, and the examples and tests.
status=0
R CMD check --no-manual --no-build-vignettes "$tarball" >check.log 2>&1 || status=1
if [[ $status -ne 0 ]] || grep -qE "^\* checking .*\.\.\. (ERROR|WARNING)" check.log; then
    cat check.log
    cat linpert.Rcheck/tests/testthat.Rout.fail 2>/dev/null || true
    echo "R CMD check: ERROR or WARNING (above)" >&2
    exit 1
fi
grep -E "^Status:" check.log | sed 's/^/R CMD check: /'
grep -B1 -A6 "NOTE$" check.log || true

# BiocCheck without the checks that need the internet (Bioconductor's lists of packages, views and the support
# site), which this machine cannot reach; its version check reads Bioconductor's version map from a file.
BIOCONDUCTOR_CONFIG_FILE=${BIOCONDUCTOR_CONFIG_FILE:-$root/scripts/bioc-config.yaml} Rscript -e '
res <- BiocCheck::BiocCheck(commandArgs(TRUE)[1], `no-check-deprecated` = TRUE, `no-check-CRAN` = TRUE,
                            `no-check-bioc-help` = TRUE)
cat(sprintf("BiocCheck: %d ERROR, %d WARNING, %d NOTE\n", length(res$error), length(res$warning), length(res$note)))
if (length(res$error) || length(res$warning)) quit(status = 1)
' "$tarball" >bioccheck.log 2>&1 || { cat bioccheck.log; echo "BiocCheck: ERROR or WARNING (above)" >&2; exit 1; }
tail -1 bioccheck.log
