FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY cli cli
COPY ingest ingest
COPY pipelines pipelines
COPY orchestration orchestration
COPY dashboards dashboards
COPY transforms transforms
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["pulsetrace"]
