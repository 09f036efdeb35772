# COSNet Studio for a lab server.
#   docker build -t cosnet-studio .                      # CPU torch (default)
#   docker build -t cosnet-studio:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#   docker build -t cosnet-studio:pg --build-arg WITH_POSTGRES=1 .     # + the PostgreSQL driver (psycopg)
#   docker run -p 8501:8501 -v cosnet-data:/data cosnet-studio
# Environment: COSNET_DATA_DIR (default /data, the volume), COSNET_DATABASE_URL (default SQLite in /data),
# RAY_ADDRESS (an existing Ray cluster; default: a local Ray inside the container), COSNET_AUTH (see README).
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# 1: also install requirements-postgres.txt (psycopg), for COSNET_DATABASE_URL=postgresql+psycopg://...
ARG WITH_POSTGRES=0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    COSNET_DATA_DIR=/data \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

WORKDIR /app

COPY requirements.txt requirements-postgres.txt ./
# Install the chosen torch build first so requirements.txt finds torch==2.13.0 already satisfied.
RUN pip install --no-cache-dir "torch==2.13.0" --index-url "${TORCH_INDEX}" \
    && pip install --no-cache-dir -r requirements.txt \
    && if [ "${WITH_POSTGRES}" = "1" ]; then pip install --no-cache-dir -r requirements-postgres.txt; fi

COPY . .

RUN useradd --create-home --uid 1000 cosnet \
    && mkdir -p /data \
    && chown -R cosnet:cosnet /data /app
USER 1000:1000

VOLUME ["/data"]
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]

CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
