# Step image on NVIDIA GPUs (the chart's default trainer image, name trainer-cuda): every step Job runs
#   python -m relmodel.operator.stepwrap <entry> --config /config/params.json
# Data steps (data, cot, samples, difficulty) run in this image too, so it carries [rag] and [worker].
# Build from the repository root:  docker build -f trainer_images/cuda.Dockerfile -t relmodel/trainer-cuda:0.1.0 .
# Keep in sync with pyproject.toml extras and the chart (tests/test_dockerfiles.py checks both).
# torch's PyPI wheel brings its own CUDA user-space libraries; the base gives the CUDA runtime and the
# driver-compat environment (NVIDIA_* variables) the NVIDIA container toolkit expects.
FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04 AS base
ENV DEBIAN_FRONTEND=noninteractive
# Ubuntu 22.04 ships Python 3.11 as python3.11 (universe); the venv gets its own pip.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM base AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[train,rag,worker]"

FROM base
RUN groupadd --gid 10001 relmodel \
 && useradd --uid 10001 --gid 10001 --home-dir /home/relmodel --create-home --shell /usr/sbin/nologin relmodel
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/relmodel HF_HUB_OFFLINE=1
WORKDIR /home/relmodel
USER 10001:10001
CMD ["relmodel", "--help"]
