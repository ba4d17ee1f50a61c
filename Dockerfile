# mcsf on the official Airflow image: one image for every Airflow service of docker-compose.yaml
# (api-server, scheduler, dag-processor, triggerer, Celery workers) and for the sandbox.
#
#   docker compose build             # or: docker build -t mcsf-airflow:3.3.2 .
#
# The Python dependencies are the repository's own pins (requirements.txt, with constraints.txt
# for the transitive set), installed on top of the image's Airflow of the same version. The code
# is baked in too, so the image runs without the source tree; docker-compose.yaml mounts dags/,
# plugins/, include/ and sandbox/ over these copies for development.
FROM apache/airflow:3.3.2-python3.11

# s3fs makes ObjectStoragePath speak s3:// (staging on S3 or MinIO; the image has the Amazon
# provider, not s3fs). Its release follows fsspec's, which constraints.txt pins.
ARG S3FS_VERSION=2026.9.0

USER root
# Named volumes start as copies of these folders, so they belong to the airflow user from the start.
RUN mkdir -p /opt/mcsf/sandbox-state /opt/mcsf/staging \
    && chown -R airflow:0 /opt/mcsf
USER airflow

COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/
# apache-airflow is named with the image's version so the pins can never move it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "s3fs==${S3FS_VERSION}" \
        -r /opt/airflow/requirements.txt -c /opt/airflow/constraints.txt

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 sandbox/ /opt/airflow/sandbox/

ENV MCSF_MAPPINGS_DIR=/opt/airflow/include/mappings \
    PYTHONPATH=/opt/airflow/plugins:/opt/airflow
