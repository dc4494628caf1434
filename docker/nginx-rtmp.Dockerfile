# The RTMP ingest: Debian's nginx + libnginx-mod-rtmp, the same packages the embedded stack runs. It runs as the
# compose file's user (AIRFLOW_UID, group 0), not root: the recordings it writes belong to the ingest gateway's uid,
# which uploads and then deletes them. The config is rendered from config/nginx at start (docker/nginx-rtmp-entrypoint.sh).
FROM debian:bookworm-slim
# curl: the healthcheck (/healthz on the stat port).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libnginx-mod-rtmp libnginx-mod-stream curl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/bridgecast/recordings /var/lib/bridgecast/nginx/tmp /var/lib/bridgecast/log /tmp/nginx \
 && chgrp -R 0 /var/lib/bridgecast /tmp/nginx \
 && chmod -R g+rwX /var/lib/bridgecast /tmp/nginx
COPY docker/nginx-rtmp-entrypoint.sh /usr/local/bin/nginx-rtmp-entrypoint
USER 50000:0
EXPOSE 1935 8081
ENTRYPOINT ["/usr/local/bin/nginx-rtmp-entrypoint"]
