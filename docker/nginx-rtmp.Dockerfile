# The RTMP ingest: Debian's nginx + libnginx-mod-rtmp, configured from config/nginx (rendered at start).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libnginx-mod-rtmp libnginx-mod-stream gettext-base \
 && rm -rf /var/lib/apt/lists/*
CMD ["nginx", "-g", "daemon off;"]
