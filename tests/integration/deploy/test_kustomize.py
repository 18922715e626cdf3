"""deploy/ overlays, rendered and checked against the services' settings classes.

Rendered with `kubectl kustomize` where kubectl exists, else with `build` below: a renderer of exactly the kustomize
features deploy/ uses (resources, inline strategic-merge patches on named resources, images, namespace, a
ConfigMap generator without hash suffixes). Where kubectl exists, a test checks that both renderings agree, so the
fallback stays honest; a kustomization using anything else fails the fallback loudly.
"""

import copy
import functools
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).parents[3] / "deploy"
SERVICES = ("registry", "serving", "monitor", "governance")
OVERLAYS = ("local", "production")
SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "patches",
    "configMapGenerator",
    "generatorOptions",
}
Doc = dict[str, Any]


def build(directory: Path) -> list[Doc]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= SUPPORTED, f"the fallback renderer does not know {set(kustomization) - SUPPORTED}"
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        docs += build(path) if path.is_dir() else [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for generator in kustomization.get("configMapGenerator", []):
        assert kustomization["generatorOptions"]["disableNameSuffixHash"], "name hashes are not reproduced"
        data = {}
        for entry in generator["files"]:
            key, _, file = entry.rpartition("=")
            data[key or Path(file).name] = (directory / file).read_text()
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    for entry in kustomization.get("patches", []):
        patch = yaml.safe_load(entry["patch"])
        [target] = [d for d in docs if (d["kind"], d["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])]
        if patch.get("$patch") == "delete":
            docs.remove(target)
        else:
            merge(target, patch)
    for image in kustomization.get("images", []):
        for container in containers(docs):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}".rstrip(":")
    if "namespace" in kustomization:
        for doc in docs:
            doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def merge(target: Doc, patch: Doc) -> None:
    """Strategic merge as deploy/ uses it: maps merge, lists of named items merge by name, other lists replace, a
    null removes the key."""
    for key, value in patch.items():
        current = target.get(key)
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            merge(current, value)
        elif isinstance(value, list) and isinstance(current, list) and all("name" in item for item in value):
            # As kubectl orders them: the patch's items first (merged into the existing ones), then the others.
            by_name = {item["name"]: item for item in current}
            patched = []
            for item in value:
                if item["name"] in by_name:
                    merge(by_name[item["name"]], item)
                    patched.append(by_name[item["name"]])
                else:
                    patched.append(copy.deepcopy(item))
            names = {item["name"] for item in value}
            current[:] = patched + [item for item in current if item["name"] not in names]
        else:
            target[key] = copy.deepcopy(value)


def containers(docs: list[Doc]) -> list[Doc]:
    return [c for d in docs if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]]


@functools.cache
def kubectl_renderings() -> dict[str, list[Doc]]:
    """Every overlay rendered by kubectl, once per session and side by side: one run takes seconds here."""
    runs = {
        overlay: subprocess.Popen(
            ["kubectl", "kustomize", str(DEPLOY / "overlays" / overlay)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for overlay in OVERLAYS
    }
    renderings = {}
    for overlay, run in runs.items():
        stdout, stderr = run.communicate(timeout=60)
        assert run.returncode == 0, stderr
        renderings[overlay] = [doc for doc in yaml.safe_load_all(stdout) if doc]
    return renderings


def by_key(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, dict[tuple[str, str], Doc]]:
    overlay: str = request.param
    docs = kubectl_renderings()[overlay] if shutil.which("kubectl") else build(DEPLOY / "overlays" / overlay)
    return overlay, by_key(docs)


def container_of(docs: dict[tuple[str, str], Doc], service: str) -> Doc:
    containers: list[Doc] = docs["Deployment", service]["spec"]["template"]["spec"]["containers"]
    [container] = containers
    return container


def environment(docs: dict[tuple[str, str], Doc], container: Doc) -> dict[str, str | None]:
    """Variable -> value (None when it comes from a Secret or the downward API)."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        env.update(docs["ConfigMap", source["configMapRef"]["name"]]["data"])
    env.update({item["name"]: item.get("value") for item in container.get("env", [])})
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_fallback_renderer_agrees_with_kubectl(overlay: str) -> None:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed: the tests below use the fallback renderer")
    assert by_key(build(DEPLOY / "overlays" / overlay)) == by_key(kubectl_renderings()[overlay])


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_runs_the_service_with_settings_it_knows(
    rendered: tuple[str, dict[tuple[str, str], Doc]], config_reference: ModuleType, service: str
) -> None:
    overlay, docs = rendered
    container = container_of(docs, service)
    assert container["command"] == ["python", "-m", f"modelyard.{service}"]
    settings = config_reference.SERVICES[service]
    known = config_reference.environment_variables(settings)
    env = environment(docs, container)
    assert not set(env) - set(known), f"{service} sets variables its settings class does not read"
    missing = {name for name, variable in known.items() if variable.required} - set(env)
    assert not missing, f"{service} lacks required settings {sorted(missing)}"
    prefix = f"MODELYARD_{service.upper()}_"
    assert env[f"{prefix}HOST"] == "0.0.0.0"
    assert env[f"{prefix}KAFKA_BOOTSTRAP"] == "modelyard-kafka-kafka-bootstrap:9092"
    assert env[f"{prefix}KAFKA_IDEMPOTENCE"] == "true"
    assert env[f"{prefix}PROFILE"] == overlay


@pytest.mark.parametrize("service", SERVICES)
def test_ports_and_probes_match_the_settings(
    rendered: tuple[str, dict[tuple[str, str], Doc]], config_reference: ModuleType, service: str
) -> None:
    _, docs = rendered
    container = container_of(docs, service)
    env = environment(docs, container)
    fields = config_reference.SERVICES[service].model_fields
    prefix = f"MODELYARD_{service.upper()}_"
    expected = {
        "grpc": int(env.get(f"{prefix}GRPC_PORT") or fields["grpc_port"].default),
        "http": int(env.get(f"{prefix}HTTP_PORT") or fields["http_port"].default),
    }
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == expected
    # Exec probes: the kubelet's httpGet cannot present the client certificate that mutual TLS asks of every caller.
    for probe, path in (("livenessProbe", "/healthz"), ("startupProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["exec"]["command"] == ["python", "-m", "modelyard.runtime.probe", service, path], probe


@pytest.mark.parametrize("service", SERVICES)
def test_tls_files_come_from_the_mounted_secret(rendered: tuple[str, dict[tuple[str, str], Doc]], service: str) -> None:
    _, docs = rendered
    container = container_of(docs, service)
    env = environment(docs, container)
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/modelyard/tls"]
    volumes = docs["Deployment", service]["spec"]["template"]["spec"]["volumes"]
    [volume] = [v for v in volumes if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == f"modelyard-{service}-tls" and mount["readOnly"]
    tls = {name.rpartition("__")[2]: value for name, value in env.items() if "_TLS__" in name}
    assert set(tls) == {"CERT_FILE", "KEY_FILE", "CLIENT_CA_FILE", "CA_FILE", "CLIENT_CERT_FILE", "CLIENT_KEY_FILE"}
    assert all(str(value).startswith("/etc/modelyard/tls/") for value in tls.values())


@pytest.mark.parametrize("service", SERVICES)
def test_every_deployment_has_a_service_a_budget_and_safe_pods(
    rendered: tuple[str, dict[tuple[str, str], Doc]], service: str
) -> None:
    _, docs = rendered
    pod = docs["Deployment", service]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    [container] = pod["spec"]["containers"]
    port_names = {port["name"] for port in container["ports"]}

    kube_service = docs["Service", service]["spec"]
    assert kube_service["selector"].items() <= labels.items()
    assert {port["targetPort"] for port in kube_service["ports"]} == port_names
    budget = docs["PodDisruptionBudget", service]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()

    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    image, _, tag = container["image"].rpartition("/")[2].partition(":")
    assert image == service and tag and tag != "latest", container["image"]


@pytest.mark.parametrize("service", SERVICES)
def test_a_network_policy_admits_only_the_named_callers_to_each_service(
    rendered: tuple[str, dict[tuple[str, str], Doc]], service: str
) -> None:
    _, docs = rendered
    labels = docs["Deployment", service]["spec"]["template"]["metadata"]["labels"]
    port_names = {port["name"] for port in container_of(docs, service)["ports"]}
    policy = docs["NetworkPolicy", service]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    admitted = [{port["port"] for port in rule["ports"]} for rule in policy["ingress"]]
    assert set().union(*admitted) == port_names  # every port has a rule; no rule names a port the pod lacks
    sources = [source for rule in policy["ingress"] for source in rule["from"]]
    open_to_all = [s for s in sources if s == {"namespaceSelector": {}}]
    # Only inference is open to every namespace; the rest admit named pods or labelled namespaces.
    assert bool(open_to_all) == (service == "serving")
    for source in sources:
        if source != {"namespaceSelector": {}}:
            assert source.get("podSelector") or source["namespaceSelector"]["matchLabels"], source


def test_serving_scales_with_an_autoscaler(rendered: tuple[str, dict[tuple[str, str], Doc]]) -> None:
    _, docs = rendered
    autoscaler = docs["HorizontalPodAutoscaler", "serving"]["spec"]
    assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "serving"}
    assert 1 <= autoscaler["minReplicas"] <= autoscaler["maxReplicas"]
    assert "replicas" not in docs["Deployment", "serving"]["spec"], "a fixed replica count fights the autoscaler"


def test_secrets_are_referenced_never_defined(rendered: tuple[str, dict[tuple[str, str], Doc]]) -> None:
    _, docs = rendered
    assert not [key for key in docs if key[0] == "Secret"]
    references = [
        item["valueFrom"]["secretKeyRef"]
        for service in SERVICES
        for item in container_of(docs, service).get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    ]
    assert references
    assert all(ref["name"].startswith("modelyard-") for ref in references)
