#!/usr/bin/env bash
# Container entrypoint. ROLE=coordinator: init the data directory once, then serve with TLS/mTLS.
# ROLE=node: init once with the site's TLS files, enrol with $ENROL_TOKEN when given, then run.
set -euo pipefail
data=/var/lib/rarenet/data
pki=/pki
case "${ROLE:?set ROLE=coordinator or ROLE=node}" in
  coordinator)
    [ -f "$data/coordinator.db" ] || rarenet-coordinator init --data-dir "$data"
    exec rarenet-coordinator serve --data-dir "$data" --listen 0.0.0.0:8443 \
      --tls-cert "$pki/coordinator.pem" --tls-key "$pki/coordinator.key" --client-ca "$pki/ca.pem" "$@" ;;
  node)
    site="${SITE_ID:?set SITE_ID}"
    [ -f "$data/node.toml" ] || rarenet-node init --data-dir "$data" --site-id "$site" \
      --coordinator "${COORDINATOR:-coordinator:8443}" --ca-file "$pki/ca.pem" \
      --cert-file "$pki/sites/$site.pem" --key-file "$pki/sites/$site.key"
    if [ -n "${ENROL_TOKEN:-}" ] && [ ! -f "$data/coordinator.pub" ]; then
      rarenet-node enroll --data-dir "$data" --token "$ENROL_TOKEN"
    fi
    exec rarenet-node run --data-dir "$data" --log-format json "$@" ;;
  *) echo "ROLE must be coordinator or node" >&2; exit 2 ;;
esac
