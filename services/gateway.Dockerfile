# The relevance gateway (FastAPI; CumPT tiers over an OpenAI-compatible engine). The operator runs: relmodel gateway --engine-url URL --config /etc/relmodel/cumpt.json --port 8080
# Build from the repository root:  docker build -f services/gateway.Dockerfile -t relmodel/gateway:0.1.0 .
# Keep in sync with pyproject.toml extras and the chart (tests/test_dockerfiles.py checks both).
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[serve]"

FROM python:3.11.13-slim-bookworm
RUN groupadd --gid 10001 relmodel \
 && useradd --uid 10001 --gid 10001 --home-dir /home/relmodel --create-home --shell /usr/sbin/nologin relmodel
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/relmodel HF_HUB_OFFLINE=1
WORKDIR /home/relmodel
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["relmodel"]
CMD ["gateway", "--engine-url", "http://localhost:8000/v1", "--config", "/etc/relmodel/cumpt.json", "--port", "8080"]
