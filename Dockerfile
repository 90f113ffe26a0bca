# A booster worker. Build: docker build -t booster:latest .
# Run:   docker run --rm -e BOOSTER_BROKER=kafka:9092 -e BOOSTER_WEB_TOKEN=<16+ characters> \
#          -v booster-state:/var/lib/booster booster:latest   (the web port listens beyond loopback: a token)
# Kubernetes: deploy/kubernetes/booster-worker.yaml (a StatefulSet; see docs/operations.md, "Deploying").

FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
# the wheels of every pinned dependency exist for this platform: no compiler in the image
COPY pyproject.toml README.md ./
COPY booster ./booster
RUN python -m venv /opt/booster \
    && /opt/booster/bin/pip install --no-cache-dir .

FROM python:3.11.14-slim-bookworm
COPY --from=build /opt/booster /opt/booster
RUN useradd --system --uid 10001 --home-dir /var/lib/booster --create-home booster
USER 10001
ENV PATH=/opt/booster/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BOOSTER_HOME=/var/lib/booster \
    BOOSTER_WEB_BIND=0.0.0.0 \
    BOOSTER_WEB_PORT=6066
WORKDIR /var/lib/booster
VOLUME ["/var/lib/booster"]
EXPOSE 6066
# the worker stops on SIGTERM: it finishes the batch in flight and leaves (or, with static
# membership, keeps) its group; give it the grace period in docs/operations.md
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/live', timeout=4)"]
ENTRYPOINT ["booster"]
CMD ["worker", "--data-dir", "/var/lib/booster/state"]
