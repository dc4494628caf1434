#!/bin/sh
# SeaweedFS for docker-compose.yml: one `weed server` with the S3 gateway, its one identity taken from the
# environment (S3_ACCESS_KEY / S3_SECRET_KEY from .env) and written to a private file, never put on the command
# line. Extra arguments are passed on to `weed server` (later flags win).
set -eu
: "${S3_ACCESS_KEY:?S3_ACCESS_KEY is not set: put the S3 access key in .env (letters and digits)}"
: "${S3_SECRET_KEY:?S3_SECRET_KEY is not set: put the S3 secret key in .env}"
case "$S3_ACCESS_KEY$S3_SECRET_KEY" in
  *[!A-Za-z0-9_+/=-]*)
    echo "S3_ACCESS_KEY / S3_SECRET_KEY in .env: use letters, digits and _ + / = - only" >&2; exit 2 ;;
esac
umask 077
identities="${TMPDIR:-/tmp}/s3-identities.json"
printf '{"identities": [{"name": "bridgecast", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],
 "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" > "$identities"
# -ip=127.0.0.1: the volume and filer servers are reached only from inside this container (the S3 gateway proxies);
# -ip.bind=0.0.0.0: the S3 port answers the compose network. Volumes unbounded, as in the embedded stack.
exec weed server -dir="${WEED_DIR:-/data}" -ip=127.0.0.1 -ip.bind=0.0.0.0 -master.telemetry=false \
  -master.volumeSizeLimitMB=1024 -volume.max=0 -filer -s3 -s3.port="${S3_PORT:-8333}" \
  -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$identities" "$@"
