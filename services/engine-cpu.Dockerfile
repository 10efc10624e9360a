# The CPU engine: an OpenAI-compatible server like vLLM's, for clusters without GPUs (serving.engine: cpu). The operator runs: relmodel serve-engine --model DIR --served-model-name NAME --port 8000
# Build from the repository root:  docker build -f services/engine-cpu.Dockerfile -t relmodel/engine-cpu:0.1.0 .
# Keep in sync with pyproject.toml extras and the chart (tests/test_dockerfiles.py checks both).
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# CPU-only torch first (the default PyPI wheel carries the CUDA libraries: gigabytes this image never uses);
# the == pin in pyproject.toml then accepts the installed 2.15.0+cpu.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.15.0"
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[serve,train]"

FROM python:3.11.13-slim-bookworm
RUN groupadd --gid 10001 relmodel \
 && useradd --uid 10001 --gid 10001 --home-dir /home/relmodel --create-home --shell /usr/sbin/nologin relmodel
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/relmodel HF_HUB_OFFLINE=1
WORKDIR /home/relmodel
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["relmodel"]
CMD ["serve-engine", "--model", "/var/lib/relmodel/model", "--served-model-name", "model", "--port", "8000"]
