# nodeauthz: the Node authorizer webhook (and its other commands) in one image.
#   docker build -t nodeauthz .
#   docker run --rm -v nodeauthz-data:/var/lib/nodeauthz nodeauthz migrate
#   docker run --rm -p 8443:8443 -v nodeauthz-data:/var/lib/nodeauthz nodeauthz \
#       serve --host 0.0.0.0 --tls-cert /tls/tls.crt --tls-key /tls/tls.key --tls-client-ca /tls/ca.crt
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid, so Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 10001 nodeauthz \
 && useradd --system --uid 10001 --gid nodeauthz --home-dir /var/lib/nodeauthz --create-home nodeauthz

# Install the package from the source tree; the sources are not kept.
COPY pyproject.toml README.md /src/
COPY app /src/app
RUN pip install /src && rm -rf /src

# The alembic revisions ship inside the package: `nodeauthz migrate` needs nothing else.
WORKDIR /opt/nodeauthz

# SQLite by default, on a volume; set NODEAUTHZ_DATABASE_URL=postgresql://... for PostgreSQL.
ENV NODEAUTHZ_DATABASE_URL=sqlite:////var/lib/nodeauthz/nodeauthz.db
VOLUME ["/var/lib/nodeauthz"]

USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["nodeauthz"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8443"]
