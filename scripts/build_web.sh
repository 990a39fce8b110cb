#!/usr/bin/env bash
# Build clients/web into clients/web/dist (Vite), unless the bundle is newer than its sources.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_node_deps.sh
web=clients/web
if [ -f "$web/dist/index.html" ] && [ -z "$(find "$web/src" "$web/index.html" "$web/vite.config.js" \
        "$web/package-lock.json" -newer "$web/dist/index.html" -print -quit)" ]; then
    exit 0
fi
echo "build_web: vite build in $web"
(cd "$web" && npx --no-install vite build --logLevel warn)
