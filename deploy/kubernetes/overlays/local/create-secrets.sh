#!/usr/bin/env bash
# Creates the local trial's Secrets with random values (keys: secrets.env.example). Idempotent:
# existing Secrets are kept, so re-running never changes the token encryption key under stored tokens.
set -euo pipefail
ns=${NAMESPACE:-fitlamp}
rand() { openssl rand -hex "$1"; }
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
if kubectl -n "$ns" get secret fitlamp-secrets >/dev/null 2>&1; then
  echo "secret/fitlamp-secrets exists; kept"
else
  pw=$(rand 16)
  kubectl -n "$ns" create secret generic fitlamp-local-postgres --from-literal=POSTGRES_PASSWORD="$pw"
  kubectl -n "$ns" create secret generic fitlamp-secrets \
    --from-literal=DATABASE_URL="postgres://fitlamp:${pw}@fitlamp-postgres:5432/fitlamp" \
    --from-literal=REDIS_URL="redis://fitlamp-redis:6379" \
    --from-literal=TOKEN_ENCRYPTION_KEY="local:$(openssl rand -base64 32)" \
    --from-literal=ADMIN_TOKEN="$(rand 24)" \
    --from-literal=ENROLLMENT_SECRET="$(rand 32)" \
    --from-literal=FITBIT_CLIENT_SECRET=fitlamp-sim-client-secret \
    --from-literal=LAMP_ACCESS_KEY=researcher@fitlamp.test \
    --from-literal=LAMP_SECRET_KEY=fitlamp-sim-secret
fi
echo "ADMIN_TOKEN: kubectl -n $ns get secret fitlamp-secrets -o jsonpath='{.data.ADMIN_TOKEN}' | base64 -d"
