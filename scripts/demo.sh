#!/usr/bin/env bash
# Install linpert (once) and run its demo: the paper's benchmarks on the embedded simulated data.
#   scripts/demo.sh [OUTPUT_FOLDER]      (default: ./linpert-results/demo)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh" fast
exec "${LINPERT_VENV:-$root/.venv}/bin/linpert" demo --out "${1:-linpert-results/demo}"
