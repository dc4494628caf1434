#!/bin/sh
# nginx-rtmp for docker-compose.yml: renders config/nginx/rtmp.conf.template (the embedded stack's config) for the
# compose network, checks it and runs nginx in the foreground, errors to the container log.
#
# What differs from the embedded stack: publishers come from anywhere on 1935 as before; players (the relay and
# the preflight probes on the workers) and the gateway's /control calls come from the compose network
# (RTMP_PLAYERS, a CIDR) instead of 127.0.0.1 — except from the network's gateway address (RTMP_DOCKER_GATEWAY),
# which is where traffic through a published port can appear to come from. No RTMPS block: Facebook's RTMPS is
# reached by the relay's ffmpeg itself.
set -eu
: "${RTMP_CALLBACK_SECRET:?RTMP_CALLBACK_SECRET is not set: put 16+ random characters in .env (openssl rand -hex 24)}"
: "${RTMP_PLAYERS:?RTMP_PLAYERS is not set: the compose network subnet, e.g. 172.30.0.0/24}"
: "${RTMP_DOCKER_GATEWAY:?RTMP_DOCKER_GATEWAY is not set: the compose network gateway, e.g. 172.30.0.1}"
case "$RTMP_CALLBACK_SECRET" in
  *[!A-Za-z0-9_-]*) echo "RTMP_CALLBACK_SECRET in .env: use letters, digits, _ and - only" >&2; exit 2 ;;
esac
[ "${#RTMP_CALLBACK_SECRET}" -ge 16 ] || { echo "RTMP_CALLBACK_SECRET in .env: use 16 characters or more" >&2; exit 2; }

VAR=${BRIDGECAST_VAR:-/var/lib/bridgecast}
TEMPLATE=${NGINX_TEMPLATE:-/opt/bridgecast/config/nginx/rtmp.conf.template}
RUN_DIR=${NGINX_RUN_DIR:-/tmp/nginx}
CONF="$RUN_DIR/nginx.conf"
# An address, not a name: nginx-rtmp resolves callback hosts once, when it starts.
GATEWAY=${INGEST_GATEWAY:?INGEST_GATEWAY is not set: the fixed address of the ingest gateway in the compose network}

mkdir -p "$VAR/recordings/live" "$VAR/recordings/fblive" "$VAR/nginx/tmp" "$VAR/log" "$RUN_DIR"
umask 077  # the rendered file holds the callback secret
sed -e 's|@@STREAM_MODULE@@||' -e 's|@@RTMPS_BLOCK@@||' -e 's|@@USER_DIRECTIVE@@||' \
    -e 's|@@LISTEN@@|0.0.0.0|g' -e "s|@@VAR@@|$VAR|g" -e 's|@@RTMP_PORT@@|1935|g' -e 's|@@HTTP_PORT@@|8081|g' \
    -e "s|@@CALLBACKS@@|$GATEWAY:8089/rtmp/$RTMP_CALLBACK_SECRET|g" -e "s|@@FANPAGE@@|$GATEWAY:8090|g" \
    -e "s|@@RECORD_INTERVAL@@|${RECORD_INTERVAL:-5m}|g" \
    -e 's|^error_log [^ ;]*|error_log stderr|' \
    -e "s|allow play 127.0.0.1;|allow play 127.0.0.1; deny play $RTMP_DOCKER_GATEWAY; allow play $RTMP_PLAYERS;|" \
    -e "s|allow 127.0.0.1; deny all; rtmp_control|allow 127.0.0.1; deny $RTMP_DOCKER_GATEWAY; allow $RTMP_PLAYERS; deny all; rtmp_control|" \
    "$TEMPLATE" > "$CONF"
# The allow lists and the error log (to the container log) are edits of the template's text: if it changed, say so
# instead of starting with the embedded stack's loopback-only rules.
for wanted in "allow play $RTMP_PLAYERS;" "allow $RTMP_PLAYERS; deny all; rtmp_control" "error_log stderr"; do
  grep -qF "$wanted" "$CONF" || {
    echo "$TEMPLATE changed: '$wanted' could not be written into it; update docker/nginx-rtmp-entrypoint.sh" >&2
    exit 3; }
done
left=$(grep -v '^[[:space:]]*#' "$CONF" | grep -o '@@[A-Z_]*@@' | sort -u | tr '\n' ' ' || true)
if [ -n "$left" ]; then
  echo "$TEMPLATE has placeholders this script does not fill: $left" >&2
  exit 3
fi
nginx -t -q -e stderr -p "$VAR/nginx" -c "$CONF" -g "pid $RUN_DIR/nginx-test.pid;"
[ "${NGINX_CHECK_ONLY:-0}" = 1 ] && exit 0  # tests/test_compose.py: render and check, do not serve
exec nginx -e stderr -p "$VAR/nginx" -c "$CONF" -g "daemon off; pid $RUN_DIR/nginx.pid;"
