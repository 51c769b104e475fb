# Image for the project's own processes in docker-compose.yml (relay, consumers, dispatcher).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY ticketing ticketing
COPY consumers consumers
COPY projections projections
COPY schemas schemas
# Editable, so that the code finds schemas/ beside it as in a checkout.
RUN pip install --no-cache-dir -e .
ENTRYPOINT []
