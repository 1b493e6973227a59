# nodeauthz: the Node authorizer webhook (and its other commands) in one image.
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t nodeauthz:0.1.0 .
#   docker run --rm -v nodeauthz-data:/var/lib/nodeauthz nodeauthz:0.1.0 migrate
#   docker run --rm -p 8443:8443 -v nodeauthz-data:/var/lib/nodeauthz nodeauthz:0.1.0 \
#       serve --host 0.0.0.0 --tls-cert /tls/tls.crt --tls-key /tls/tls.key --tls-client-ca /tls/ca.crt
# Two stages: the builder turns the project and every dependency into wheels (anything that must be
# compiled is compiled there); the final stage installs only those wheels, offline, and has no compiler.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# Re-declared: a build argument is scoped to the stage that declares it.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="nodeauthz" \
      org.opencontainers.image.description="The Kubernetes Node authorizer and NodeRestriction as webhooks over a persistent, shared SQL graph" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid, so Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 10001 nodeauthz \
 && useradd --system --uid 10001 --gid nodeauthz --home-dir /var/lib/nodeauthz --create-home nodeauthz

# Only the builder's wheels, no index and no sources: nothing is compiled here.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels nodeauthz

# The alembic revisions ship inside the package: `nodeauthz migrate` needs nothing else.
WORKDIR /opt/nodeauthz

# SQLite by default, on a volume; set NODEAUTHZ_DATABASE_URL=postgresql://... for PostgreSQL.
ENV NODEAUTHZ_DATABASE_URL=sqlite:////var/lib/nodeauthz/nodeauthz.db
VOLUME ["/var/lib/nodeauthz"]

USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["nodeauthz"]
# `serve` is ready only once a writer (`nodeauthz run` or `sync`) has listed the cluster into its database.
CMD ["serve", "--host", "0.0.0.0", "--port", "8443"]
