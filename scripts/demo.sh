#!/usr/bin/env bash
# Sets up (packages + build) and runs the paper's Figure 2: DPO on the toy model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/bin/prefengine run configs/toy/dpo.yaml "$@"
