# Step image on CPU: every step Job runs python -m relmodel.operator.stepwrap <entry> --config /config/params.json. Data steps (data, cot, samples, difficulty) run in this image too, so it carries [rag] and [worker] (the task modules import celery).
# Build from the repository root:  docker build -f trainer_images/cpu.Dockerfile -t relmodel/trainer-cpu:0.1.0 .
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
RUN pip install ".[train,rag,worker]"

FROM python:3.11.13-slim-bookworm
RUN groupadd --gid 10001 relmodel \
 && useradd --uid 10001 --gid 10001 --home-dir /home/relmodel --create-home --shell /usr/sbin/nologin relmodel
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/relmodel HF_HUB_OFFLINE=1
WORKDIR /home/relmodel
USER 10001:10001
CMD ["relmodel", "--help"]
