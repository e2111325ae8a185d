# One image for both compose services: `curate serve` (api) and `curate worker` (worker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    CURATE_HOME=/data

WORKDIR /app
# CPU torch first, so sentence-transformers does not pull the CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY curate ./curate
COPY api ./api
COPY pipelines ./pipelines
RUN pip install ".[postgres]" \
    && useradd --create-home --uid 10001 curate \
    && mkdir -p /data && chown curate /data
# EXTRAS=ray builds the image of the compose `ray` profile (ray-head, ray-worker).
ARG EXTRAS=""
RUN if [ -n "$EXTRAS" ]; then pip install ".[${EXTRAS}]"; fi
USER curate
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["curate", "serve", "--host", "0.0.0.0", "--port", "8000"]
