"""docker-compose.yaml and the Dockerfile, checked without a Docker engine.

The file is validated against the Compose Specification's JSON schema (the copy that
check-jsonschema ships and keeps current), then held to what this deployment needs: every
Airflow service built on the one `x-airflow-common` anchor, pinned images, healthchecks, the
volumes and connections that make two workers see the same staging and the same sandbox.
Where a Compose CLI exists, `docker compose config` must accept the file too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yaml"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init"}
SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "minio", "minio-init", "sandbox"}
ONE_SHOT = {"airflow-init", "minio-init"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def interpolate(text: str) -> str:
    """Compose's ``${VAR:-default}`` with every variable unset (the defaults), and ``$$`` as ``$``."""
    return _VARIABLE.sub(lambda m: m.group(2) or "", text).replace("$$", "$")


def env(service: str) -> dict[str, str]:
    return {key: interpolate(str(value)) for key, value in services()[service]["environment"].items()}


def running() -> dict[str, dict]:
    """Services that stay up (not one-shot, not behind a profile)."""
    return {name: spec for name, spec in services().items() if name not in ONE_SHOT and not spec.get("profiles")}


def test_matches_the_compose_specification():
    import jsonschema

    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, "\n".join(errors)


@pytest.mark.skipif(not shutil.which("docker"), reason="no Docker CLI")
def test_docker_compose_config_accepts_it():
    """Compose's own loader (interpolation, merges, references), where the plugin is installed; no engine needed."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode:
        pytest.skip("the Docker Compose plugin is not installed here")
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True,
                            text=True, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_has_every_service():
    assert set(services()) >= SERVICES


def test_every_airflow_service_merges_the_common_anchor():
    """Checked on the YAML node graph: each service's ``<<`` is the anchor itself, not a copy."""
    root = yaml.compose(COMPOSE.read_text())
    top = {key.value: value for key, value in root.value}
    common = top["x-airflow-common"]
    merged = {}
    for key, spec in top["services"].value:
        merges = [value for k, value in spec.value if k.tag == "tag:yaml.org,2002:merge"]
        merged[key.value] = any(value is common for value in merges)
    airflow = {name for name in services() if name.startswith("airflow-") or name in ("flower", "minio-init")}
    assert airflow >= AIRFLOW_SERVICES
    assert {name for name in airflow if not merged[name]} == set()
    image = compose()["x-airflow-common"]["image"]
    for name in airflow:
        spec = services()[name]
        assert spec["image"] == image, name
        if name != "airflow-init":  # which runs as root to own the shared volumes
            assert spec["user"] == compose()["x-airflow-common"]["user"], name
        assert set(compose()["x-airflow-common"]["volumes"]) <= set(spec["volumes"]), name
        assert set(compose()["x-airflow-common"]["environment"]) <= set(spec["environment"]), name


def test_images_are_pinned():
    for name, spec in services().items():
        image = spec["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_the_image_is_the_airflow_of_requirements_txt():
    """Dockerfile: the official image of the pinned Airflow, plus requirements.txt with constraints.txt."""
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.M).group(1)
    assert base == f"apache/airflow:{pinned}-python3.11"
    assert pinned in compose()["x-airflow-common"]["image"]
    install = " ".join(line for line in dockerfile.replace("\\\n", " ").splitlines() if line.startswith("RUN pip"))
    assert "-r /opt/airflow/requirements.txt" in install and "-c /opt/airflow/constraints.txt" in install
    assert compose()["x-airflow-common"]["build"]["context"] == "."


def test_dockerignore_keeps_what_the_image_copies():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "**", "start from nothing, then admit what the Dockerfile copies"
    copied = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+?)\s+\S+$", (REPO / "Dockerfile").read_text(), re.M)
    for source in " ".join(copied).split():
        assert f"!{source}" in patterns, f".dockerignore leaves out {source}, which the Dockerfile copies"


def test_long_running_services_have_healthchecks():
    for name, spec in running().items():
        assert spec.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert spec.get("restart") == "always", f"{name} does not restart"


def test_dependencies_exist_and_wait_for_health_or_completion():
    for name, spec in services().items():
        for needed, condition in spec.get("depends_on", {}).items():
            assert needed in services(), f"{name} depends on unknown {needed}"
            want = "service_completed_successfully" if needed in ONE_SHOT else "service_healthy"
            assert condition["condition"] == want, f"{name} -> {needed}"
            if want == "service_healthy":
                assert services()[needed].get("healthcheck"), f"{name} waits for {needed}, which has no healthcheck"


def test_volumes_are_declared_and_code_is_mounted():
    declared = set(compose()["volumes"])
    used = set()
    for spec in services().values():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose()["x-airflow-common"]["volumes"]}
    for folder in ("dags", "plugins", "include"):
        assert mounts[f"/opt/airflow/{folder}"] == f"./{folder}"
        assert (REPO / folder).is_dir()


def test_celery_executor_wiring():
    worker = env("airflow-worker")
    assert worker["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urlsplit(worker["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert urlsplit(worker["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert urlsplit(worker["AIRFLOW__CELERY__RESULT_BACKEND"]).hostname == "postgres"
    api = urlsplit(worker["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "airflow-apiserver" and api.path == "/execution/"
    assert services()["airflow-worker"]["deploy"]["replicas"] >= 2
    assert worker["DUMB_INIT_SETSID"] == "0"


def test_staging_defaults_to_the_minio_bucket_through_the_aws_connection():
    worker = env("airflow-worker")
    staging = urlsplit(worker["MCSF_STAGING_URL"])
    assert staging.scheme == "s3" and staging.username == "aws_default"
    aws = json.loads(worker["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["conn_type"] == "aws" and urlsplit(aws["extra"]["endpoint_url"]).hostname == "minio"
    minio = {key: interpolate(str(value)) for key, value in services()["minio"]["environment"].items()}
    assert (aws["login"], aws["password"]) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    bucket_script = services()["minio-init"]["command"][-1]
    assert f'create_bucket("{staging.hostname}")' in bucket_script


def sandbox_flags() -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in services()["sandbox"]["command"] if "=" in arg)


def test_connections_point_at_the_sandbox_service(tmp_path):
    from sandbox.mailchimp.account import api_key_for
    from sandbox.salesforce.auth import credentials

    worker, flags = env("airflow-worker"), sandbox_flags()
    mailchimp = json.loads(worker["AIRFLOW_CONN_MAILCHIMP_DEFAULT"])
    url = urlsplit(mailchimp["host"])
    assert (url.hostname, url.port) == ("sandbox", int(flags["mailchimp-port"]))
    # The Mailchimp client rewrites every "server" in its URLs (its data-centre placeholder).
    assert "server" not in mailchimp["host"]
    assert mailchimp["password"] == api_key_for(int(flags["seed"]))

    salesforce = json.loads(worker["AIRFLOW_CONN_SALESFORCE_DEFAULT"])["extra"]
    url = urlsplit(salesforce["instance_url"])
    assert (url.scheme, url.hostname, url.port) == ("https", "sandbox", int(flags["salesforce-port"]))
    assert flags["host"] == "sandbox" == services()["sandbox"]["hostname"]
    creds = credentials(tmp_path)
    assert (salesforce["consumer_key"], salesforce["consumer_secret"]) == (creds["client_id"], creds["client_secret"])
    # The CA bundle is read from the sandbox's state volume, mounted into every Airflow service.
    state = flags["state-dir"]
    assert salesforce["ca_bundle"].startswith(state + "/")
    sandbox_volume = next(v.split(":")[0] for v in services()["sandbox"]["volumes"] if v.split(":")[1] == state)
    assert f"{sandbox_volume}:{state}:ro" in compose()["x-airflow-common"]["volumes"]


def test_the_mappings_the_services_read_are_the_mounted_ones():
    worker = env("airflow-worker")
    assert worker["MCSF_MAPPINGS_DIR"] == "/opt/airflow/include/mappings"
    assert list((REPO / "include" / "mappings").glob("*.yaml"))
