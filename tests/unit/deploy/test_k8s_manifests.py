"""k8s/ and the Dockerfile, checked offline (DESIGN.md §8, issue 6 "Deployment (k8s/)").

No kubectl, no cluster, no network, no database:

- *Render*: ``k8s/base/kustomization.yaml`` holds only ``resources`` (checked below), so the
  rendered base is exactly the YAML documents of those files, loaded with PyYAML.
- *Schemas*: every document is validated against the Kubernetes JSON schemas of one pinned
  version, shipped inside the ``kubernetes-validate`` wheel, in strict mode (an unknown or
  misspelt field is an error, not silently dropped by the API server).
- *Policies*: restricted pod security, resources, probes, PDBs, Services, HPA, NetworkPolicies,
  configuration wiring, the migrate-before-rollout order, and that every container command is a
  real entry point of this project (``billing`` subcommands parsed by the real CLI).
- *Image*: the Dockerfile's structure and the .dockerignore, read statically (no Docker here).

Each policy is a function returning the list of violations, and the negative tests feed it
mutated manifests, so a policy that silently accepts everything fails the suite.
"""

from __future__ import annotations

import base64
import copy
import importlib
import importlib.util
import ipaddress
import logging
import re
import socket
import tomllib
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml  # PyYAML: a dependency of kubernetes-validate

from billing import cli
from rating.server import LIVENESS, ServerConfig

ROOT = Path(__file__).resolve().parents[3]
BASE = ROOT / "k8s" / "base"
KUBERNETES_VERSION = "1.30.0"
APP_UID = 10001  # the Dockerfile's USER and every pod's runAsUser
RATING_CLIENT_LABEL = ("billing-engine/rating-client", "true")
ALLOWED_EGRESS = {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 4317)}  # DNS, PostgreSQL, OTLP
PLACEHOLDER = "REPLACE_ME"
# Modules run as `python -m X` whose __main__ does not exist yet, and why. Only their package
# must import today; once __main__ exists it is checked like any other entry point.
PENDING_MAIN = {"invoicer": "the invoicer worker's __main__ arrives with the invoicer issue"}

Manifest = dict[str, Any]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


# ---- rendering --------------------------------------------------------------------------------


def render(base: Path = BASE) -> list[Manifest]:
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    documents: list[Manifest] = []
    for entry in kustomization["resources"]:
        documents.extend(doc for doc in yaml.safe_load_all((base / entry).read_text()) if doc is not None)
    return documents


DOCS = render()


def key(doc: Manifest) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def of_kind(kind: str, docs: list[Manifest] = DOCS) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(kind: str, name: str, docs: list[Manifest] = DOCS) -> Manifest:
    (found,) = [doc for doc in of_kind(kind, docs) if doc["metadata"]["name"] == name]
    return found


def pod_template(workload: Manifest) -> Manifest:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Manifest = spec["template"]
    return template


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = pod_template(workload)["spec"]
    return spec


def containers(workload: Manifest) -> list[Manifest]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


WORKLOADS = [doc for doc in DOCS if doc["kind"] in WORKLOAD_KINDS]
CONTAINERS = [(workload, container) for workload in WORKLOADS for container in containers(workload)]


def container_id(pair: tuple[Manifest, Manifest]) -> str:
    return f"{key(pair[0])}/{pair[1]['name']}"


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions); ``{}`` selects everything."""
    if any(labels.get(name) != value for name, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        name, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = name in labels
        if (
            (operator == "In" and labels.get(name) not in values)
            or (operator == "NotIn" and present and labels[name] in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = pod_template(workload)["metadata"]["labels"]
    return labels


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SUFFIXES = {
    None: Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
}


def quantity(value: str | int | float) -> Fraction:
    match = _QUANTITY.match(str(value))
    assert match, f"not a Kubernetes quantity: {value!r}"
    return Fraction(match.group(1)) * _SUFFIXES[match.group(2)]


# ---- the policies -----------------------------------------------------------------------------


def pod_security_violations(workload: Manifest) -> list[str]:
    """Restricted pod security (plus resources and a writable /tmp) for every container."""
    where = key(workload)
    pod = pod_spec(workload)
    pod_context = pod.get("securityContext") or {}
    problems = [f"{where}: {flag} is set" for flag in ("hostNetwork", "hostPID", "hostIPC") if pod.get(flag)]
    tmp_volumes = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
    for container in containers(workload):
        at = f"{where}/{container['name']}"
        context = container.get("securityContext")
        if not context:
            problems.append(f"{at}: no securityContext")
            context = {}

        def effective(field: str, context: Manifest = context) -> Any:
            return context.get(field, pod_context.get(field))

        if effective("runAsNonRoot") is not True:
            problems.append(f"{at}: runAsNonRoot is not true")
        if effective("runAsUser") == 0:
            problems.append(f"{at}: runAsUser is 0 (root)")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: readOnlyRootFilesystem is not true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation is not false")
        if context.get("privileged"):
            problems.append(f"{at}: privileged")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{at}: capabilities do not drop ALL")
        if capabilities.get("add"):
            problems.append(f"{at}: capabilities added: {capabilities['add']}")
        if (effective("seccompProfile") or {}).get("type") not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{at}: seccompProfile is not RuntimeDefault")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(kind) or {}):
                    problems.append(f"{at}: no {resource} in resources.{kind}")
        for resource in ("cpu", "memory"):
            request = (resources.get("requests") or {}).get(resource)
            limit = (resources.get("limits") or {}).get(resource)
            if request is not None and limit is not None and quantity(request) > quantity(limit):
                problems.append(f"{at}: {resource} request {request} is above its limit {limit}")
        if not any(
            mount["mountPath"] == "/tmp" and mount["name"] in tmp_volumes
            for mount in container.get("volumeMounts", [])
        ):
            problems.append(f"{at}: /tmp is not an emptyDir (the root filesystem is read-only)")
    return problems


def test_kustomization_is_plain_resources_listing_every_manifest() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    # Anything else (patches, generators, labels, images...) would change what `render` returns.
    assert set(kustomization) == {"apiVersion", "kind", "resources"}
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    on_disk = {path.name for path in BASE.glob("*.y*ml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk, "every manifest in k8s/base is listed, and only those"
    keys = [key(doc) for doc in DOCS]
    assert len(keys) == len(set(keys)), "two documents share a kind and name"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: validation must be offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("schema validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("doc", DOCS, ids=key)
def test_every_document_is_valid_for_the_pinned_kubernetes_version(doc: Manifest) -> None:
    assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True) == "1.30"


def _add_unknown_field(doc: Manifest) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}


def _named_grpc_port(doc: Manifest) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"


def _string_replicas(doc: Manifest) -> None:
    doc["spec"]["replicas"] = "2"


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("mutate", [_add_unknown_field, _named_grpc_port, _string_replicas])
def test_schema_validation_rejects_broken_manifests(mutate: Callable[[Manifest], None]) -> None:
    doc = copy.deepcopy(named("Deployment", "billing-rating"))
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    mutate(doc)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_object_carries_the_recommended_labels() -> None:
    required = {
        "app.kubernetes.io/name": "billing-engine",
        "app.kubernetes.io/instance": "billing",
        "app.kubernetes.io/part-of": "billing",
        "app.kubernetes.io/managed-by": "kustomize",
    }
    for doc in DOCS:
        labels = doc["metadata"].get("labels") or {}
        assert required.items() <= labels.items(), key(doc)
        assert labels.get("app.kubernetes.io/component"), key(doc)
        assert labels.get("app.kubernetes.io/version"), key(doc)
    for workload in WORKLOADS:
        labels = pod_labels(workload)
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        assert labels.get("app.kubernetes.io/component") == component, key(workload)
        if "selector" in workload["spec"]:
            assert selects(workload["spec"]["selector"], labels), f"{key(workload)} selects its own pods"
            # Selectors are immutable: a changing label (version) must not be part of one.
            assert "app.kubernetes.io/version" not in workload["spec"]["selector"].get("matchLabels", {})


@pytest.mark.parametrize("workload", WORKLOADS, ids=key)
def test_every_container_runs_restricted_with_resources(workload: Manifest) -> None:
    assert pod_security_violations(workload) == []
    assert pod_spec(workload)["securityContext"]["runAsUser"] == APP_UID
    assert pod_spec(workload).get("automountServiceAccountToken") is False


def _drop_security_context(doc: Manifest) -> None:
    del doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]


def _writable_root(doc: Manifest) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False


def _keep_capabilities(doc: Manifest) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"] = {"drop": []}


def _allow_escalation(doc: Manifest) -> None:
    del doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]


def _run_as_root(doc: Manifest) -> None:
    doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0


def _no_limits(doc: Manifest) -> None:
    del doc["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def _request_above_limit(doc: Manifest) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "2Gi"


def _no_tmp(doc: Manifest) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = []


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (_drop_security_context, "no securityContext"),
        (_writable_root, "readOnlyRootFilesystem"),
        (_keep_capabilities, "drop ALL"),
        (_allow_escalation, "allowPrivilegeEscalation"),
        (_run_as_root, "runAsUser is 0"),
        (_no_limits, "resources.limits"),
        (_request_above_limit, "above its limit"),
        (_no_tmp, "/tmp"),
    ],
)
def test_pod_security_policy_catches_a_weakened_pod(
    mutate: Callable[[Manifest], None], complaint: str
) -> None:
    doc = copy.deepcopy(named("Deployment", "billing-rating"))
    assert pod_security_violations(doc) == []
    mutate(doc)
    assert any(complaint in problem for problem in pod_security_violations(doc))


# ---- rating: probes, shutdown, Services, HPA ------------------------------------------------


def rating_container() -> Manifest:
    (container,) = pod_spec(named("Deployment", "billing-rating"))["containers"]
    return container


def test_rating_probes_are_grpc_health_checks_on_its_container_port() -> None:
    container = rating_container()
    (port,) = container["ports"]
    command = container["command"]
    assert command[command.index("--port") + 1] == str(port["containerPort"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port["containerPort"], probe
    # Readiness follows the database (service ""); liveness asks the name only shutdown turns off.
    assert container["readinessProbe"]["grpc"].get("service", "") == ""
    assert container["livenessProbe"]["grpc"]["service"] == LIVENESS
    # Liveness must tolerate what readiness reacts to (the server's health follows the database).
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert (
        liveness["periodSeconds"] * liveness["failureThreshold"]
        > readiness["periodSeconds"] * readiness["failureThreshold"]
    )


def test_termination_grace_outlasts_the_servers_shutdown() -> None:
    rating = pod_spec(named("Deployment", "billing-rating"))
    pre_stop = rating_container().get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    server_grace = ServerConfig().grace_seconds
    assert rating["terminationGracePeriodSeconds"] > pre_stop + server_grace
    invoicer = pod_spec(named("Deployment", "billing-invoicer"))
    assert invoicer["terminationGracePeriodSeconds"] >= 60
    assert invoicer["terminationGracePeriodSeconds"] > rating["terminationGracePeriodSeconds"]


def test_services_select_exactly_the_rating_pods_on_its_grpc_port() -> None:
    rating = named("Deployment", "billing-rating")
    container = rating_container()
    services = of_kind("Service")
    assert {service["spec"].get("clusterIP") for service in services} == {None, "None"}, (
        "one ClusterIP Service and one headless Service"
    )
    for service in services:
        selector = service["spec"]["selector"]
        assert selects({"matchLabels": selector}, pod_labels(rating)), key(service)
        for other in WORKLOADS:
            if other is not rating:
                assert not selects({"matchLabels": selector}, pod_labels(other)), (
                    f"{key(service)} {key(other)}"
                )
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert any(target in (p["name"], p["containerPort"]) for p in container["ports"]), key(service)
            assert port["port"] == 50051
    headless = named("Service", "billing-rating-headless")
    assert headless["spec"].get("publishNotReadyAddresses", False) is False


def test_hpa_scales_the_rating_deployment_on_cpu() -> None:
    (hpa,) = of_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    rating = named("Deployment", target["name"])
    assert rating["metadata"]["labels"]["app.kubernetes.io/component"] == "rating"
    assert "replicas" not in rating["spec"], "the HPA owns the replica count"
    assert any(
        metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
        for metric in hpa["spec"]["metrics"]
    )
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def minimum_replicas(deployment: Manifest) -> int:
    for hpa in of_kind("HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]:
            return int(hpa["spec"]["minReplicas"])
    return int(deployment["spec"].get("replicas", 1))


@pytest.mark.parametrize("deployment", of_kind("Deployment"), ids=key)
def test_each_deployment_has_a_pdb_that_selects_it_and_allows_a_drain(deployment: Manifest) -> None:
    matching = [
        pdb
        for pdb in of_kind("PodDisruptionBudget")
        if selects(pdb["spec"]["selector"], pod_labels(deployment))
    ]
    assert len(matching) == 1, f"{key(deployment)}: {len(matching)} PodDisruptionBudgets select it"
    (pdb,) = matching
    spec = pdb["spec"]
    if "maxUnavailable" in spec:
        assert int(spec["maxUnavailable"]) >= 1
    else:
        assert int(spec["minAvailable"]) < minimum_replicas(deployment), "a node drain could never finish"
    assert minimum_replicas(deployment) >= 2, "one pod alone cannot be disrupted safely"


# ---- network policy ---------------------------------------------------------------------------


def policy_types(policy: Manifest) -> set[str]:
    spec = policy["spec"]
    return set(spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"]))


def network_violations(docs: list[Manifest]) -> list[str]:
    problems: list[str] = []
    policies = of_kind("NetworkPolicy", docs)
    rating_port = 50051
    for workload in [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]:
        where = key(workload)
        labels = pod_labels(workload)
        applying = [policy for policy in policies if selects(policy["spec"]["podSelector"], labels)]
        ingress = [p for p in applying if "Ingress" in policy_types(p)]
        egress = [p for p in applying if "Egress" in policy_types(p)]
        if not ingress:
            problems.append(f"{where}: not isolated for ingress")
        if not egress:
            problems.append(f"{where}: not isolated for egress")
        ingress_rules = [rule for p in ingress for rule in p["spec"].get("ingress") or []]
        is_rating = labels.get("app.kubernetes.io/component") == "rating"
        if not is_rating and ingress_rules:
            problems.append(f"{where}: accepts ingress")
        for rule in ingress_rules:
            ports = {(port.get("protocol", "TCP"), port.get("port")) for port in rule.get("ports") or []}
            if ports != {("TCP", rating_port)}:
                problems.append(f"{where}: ingress on {ports or 'every port'}")
            peers = rule.get("from") or []
            if not peers:
                problems.append(f"{where}: ingress from anywhere")
            for peer in peers:
                client = peer.get("podSelector", {}).get("matchLabels", {})
                if client.get(RATING_CLIENT_LABEL[0]) != RATING_CLIENT_LABEL[1]:
                    problems.append(f"{where}: ingress from unlabelled peers {peer}")
        if is_rating and not ingress_rules:
            problems.append(f"{where}: no client can reach it")
        for rule in [rule for p in egress for rule in p["spec"].get("egress") or []]:
            ports = {(port.get("protocol", "TCP"), port.get("port")) for port in rule.get("ports") or []}
            if not ports or not ports <= ALLOWED_EGRESS:
                problems.append(f"{where}: egress on {ports or 'every port'}")
            if any(port == 53 for _, port in ports) and not rule.get("to"):
                problems.append(f"{where}: DNS egress to anywhere, not only kube-dns")
    return problems


def test_network_policies_admit_only_labelled_clients_and_needed_egress() -> None:
    assert network_violations(DOCS) == []
    assert rating_container()["ports"][0]["containerPort"] == 50051


def _open_ingress(docs: list[Manifest]) -> None:
    named("NetworkPolicy", "billing-rating-ingress", docs)["spec"]["ingress"][0]["from"] = []


def _invoicer_ingress(docs: list[Manifest]) -> None:
    policy = named("NetworkPolicy", "billing-deny-ingress", docs)
    policy["spec"]["ingress"] = [{"ports": [{"port": 8080}]}]


def _any_egress(docs: list[Manifest]) -> None:
    named("NetworkPolicy", "billing-egress", docs)["spec"]["egress"].append({})


def _no_deny(docs: list[Manifest]) -> None:
    docs.remove(named("NetworkPolicy", "billing-deny-ingress", docs))


@pytest.mark.parametrize("mutate", [_open_ingress, _invoicer_ingress, _any_egress, _no_deny])
def test_network_policy_check_catches_an_opened_policy(mutate: Callable[[list[Manifest]], None]) -> None:
    docs = copy.deepcopy(DOCS)
    mutate(docs)
    assert network_violations(docs) != []


# ---- configuration and the migration Job ----------------------------------------------------


def secret_values(secret: Manifest) -> dict[str, str]:
    values = dict(secret.get("stringData") or {})
    values.update(
        {name: base64.b64decode(value).decode() for name, value in (secret.get("data") or {}).items()}
    )
    return values


def test_containers_take_configuration_from_the_configmap_and_secrets_from_the_secret() -> None:
    config_maps = {doc["metadata"]["name"]: doc.get("data") or {} for doc in of_kind("ConfigMap")}
    secrets = {doc["metadata"]["name"]: secret_values(doc) for doc in of_kind("Secret")}
    (config,) = config_maps.values()
    assert config["BILLING_LOG_FORMAT"] == "json"
    assert config["BILLING_LOG_LEVEL"].upper() in logging.getLevelNamesMapping()
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"]
    service_names = []
    for workload, container in CONTAINERS:
        at = f"{key(workload)}/{container['name']}"
        sources = container.get("envFrom") or []
        assert any(source.get("configMapRef", {}).get("name") in config_maps for source in sources), at
        for source in sources:
            for ref, known in (("configMapRef", config_maps), ("secretRef", secrets)):
                if ref in source:
                    assert source[ref]["name"] in known, at
        env = {variable["name"]: variable for variable in container.get("env") or []}
        database = env["DATABASE_URL"]
        assert "value" not in database, f"{at}: DATABASE_URL is a literal"
        ref = database["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]], at
        for variable in env.values():
            for kind, known in (("configMapKeyRef", config_maps), ("secretKeyRef", secrets)):
                ref = variable.get("valueFrom", {}).get(kind)
                if ref:
                    assert ref["key"] in known[ref["name"]], f"{at}: {variable['name']}"
        service_names.append(env["OTEL_SERVICE_NAME"]["value"])
    assert len(service_names) == len(set(service_names)), "each deployable reports its own service name"


def test_committed_secrets_hold_placeholders_only() -> None:
    for secret in of_kind("Secret"):
        for name, value in secret_values(secret).items():
            assert PLACEHOLDER in value, f"{key(secret)}: {name} looks like a real value"


def sync_wave(doc: Manifest) -> int:
    return int((doc["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))


def test_the_migration_job_runs_before_the_rollout() -> None:
    (job,) = of_kind("Job")
    (container,) = pod_spec(job)["containers"]
    assert container["command"] == ["billing", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    # Argo CD order: configuration, then the Job (awaited), then the Deployments.
    for config in [*of_kind("ConfigMap"), *of_kind("Secret")]:
        assert sync_wave(config) < sync_wave(job), key(config)
    for deployment in of_kind("Deployment"):
        assert sync_wave(job) < sync_wave(deployment), key(deployment)
    # Plain kubectl order (k8s/README.md): `apply -l 'component in (config,migration)'` first must
    # bring exactly the Job and everything it reads.
    phase = {
        "matchExpressions": [
            {"key": "app.kubernetes.io/component", "operator": "In", "values": ["config", "migration"]}
        ]
    }
    first = {key(doc) for doc in DOCS if selects(phase, doc["metadata"]["labels"])}
    needed = {
        f"ConfigMap/{s['configMapRef']['name']}" for s in container.get("envFrom", []) if "configMapRef" in s
    }
    needed |= {
        f"Secret/{v['valueFrom']['secretKeyRef']['name']}"
        for v in container.get("env", [])
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    assert first == {key(job), *needed}


# ---- entry points -----------------------------------------------------------------------------


def project_scripts() -> dict[str, str]:
    scripts: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return scripts


def resolve(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


@pytest.mark.parametrize(
    ("workload", "container"), CONTAINERS, ids=[container_id(pair) for pair in CONTAINERS]
)
def test_every_container_command_is_a_real_entry_point(workload: Manifest, container: Manifest) -> None:
    command = container.get("command")
    assert command, "an explicit command, not whatever the image's ENTRYPOINT happens to be"
    program = command[0]
    if program == "python":
        assert command[1] == "-m", command
        module = command[2]
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{module} is not importable"
        if (
            spec.submodule_search_locations is not None
            and importlib.util.find_spec(f"{module}.__main__") is None
        ):
            assert module in PENDING_MAIN, f"`python -m {module}`: the package has no __main__"
    else:
        scripts = project_scripts()
        assert program in scripts, f"{program} is not a [project.scripts] entry of pyproject.toml"
        assert callable(resolve(scripts[program]))


def billing_commands() -> list[list[str]]:
    return [container["command"] for _, container in CONTAINERS if container["command"][0] == "billing"]


def test_the_invoicer_package_is_importable() -> None:
    # Only the package today: `invoicer.__main__` comes with the invoicer issue (PENDING_MAIN).
    invoicer = importlib.import_module("invoicer")
    assert hasattr(invoicer, "__path__"), "invoicer is a package"
    assert any(c["command"] == ["python", "-m", "invoicer"] for _, c in CONTAINERS)


@pytest.mark.parametrize("subcommand", sorted({command[1] for command in billing_commands()}))
def test_billing_accepts_each_subcommand_used(subcommand: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([subcommand, "--help"])
    assert exit_.value.code == 0
    assert subcommand in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:  # and the check can fail: a misspelt subcommand
        cli.main([f"{subcommand}x", "--help"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("command", billing_commands(), ids=lambda command: " ".join(command))
def test_billing_parses_each_full_command_line(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole argv, options included, parses; nothing is started (the runner is stubbed)."""
    served: list[Any] = []

    def fake_run(coroutine: Any) -> None:
        if hasattr(coroutine, "close"):
            coroutine.close()

    monkeypatch.setattr(cli, "_run", fake_run)
    monkeypatch.setattr(cli, "_serve", served.append)
    monkeypatch.setattr(cli, "configure_logging", lambda: None)
    assert cli.main(command[1:]) == 0
    if command[1] == "serve":
        (args,) = served
        # The kubelet probes the pod IP: a loopback listener would never become ready.
        assert not ipaddress.ip_address(args.host).is_loopback
        assert args.port == rating_container()["ports"][0]["containerPort"]


# ---- the image --------------------------------------------------------------------------------


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuations joined."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    stages: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def dockerfile_violations(text: str) -> list[str]:
    stages = dockerfile_stages(text)
    if len(stages) < 2:
        return ["not a multi-stage build"]
    problems: list[str] = []
    images = [stage[0][1].split()[0] for stage in stages]
    final = stages[-1]
    if images[-1] != "python:3.11-slim":
        problems.append(f"runtime image is {images[-1]}, not python:3.11-slim")
    if len(set(images)) != 1:
        problems.append("the venv is built on another image than it runs on")
    users = [arguments for instruction, arguments in final if instruction == "USER"]
    user = users[-1].split(":")[0] if users else ""
    if not user.isdigit() or int(user) == 0:
        problems.append(f"runtime USER is {user or 'unset'}: not a numeric non-root uid")
    elif int(user) != APP_UID:
        problems.append(f"runtime USER {user} is not the manifests' runAsUser {APP_UID}")
    builder_runs = [
        arguments for stage in stages[:-1] for instruction, arguments in stage if instruction == "RUN"
    ]
    syncs = [run for run in builder_runs if "uv sync" in run]
    if not syncs:
        problems.append("no `uv sync` in a build stage")
    for run in syncs:
        if "--frozen" not in run:
            problems.append(f"`{run}`: not --frozen")
        if "--no-dev" not in run or re.search(r"--(dev|all-groups|group|only-dev)\b", run):
            problems.append(f"`{run}`: installs development dependencies")
    makefile_uv = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert makefile_uv
    if not any(f"uv=={makefile_uv.group(1)}" in run for run in builder_runs):
        problems.append(f"uv is not pinned to the Makefile's {makefile_uv.group(1)}")
    for instruction, arguments in final:
        if instruction == "RUN" and re.search(
            r"\b(apt-get|apt|apk|pip3?|uv|gcc|make|build-essential)\b", arguments
        ):
            problems.append(f"runtime stage installs or builds: `{arguments}`")
    copied = {
        arguments.split()[-2]
        for instruction, arguments in final
        if instruction == "COPY" and "--from=" in arguments
    }
    if not {"/app/.venv", "/app/src"} <= copied:
        problems.append(f"runtime copies {sorted(copied)}, not the venv and src from the builder")
    paths = [
        token.removeprefix("PATH=")
        for instruction, arguments in final
        if instruction == "ENV"
        for token in arguments.split()
        if token.startswith("PATH=")
    ]
    if not paths or not paths[-1].startswith("/app/.venv/bin:"):
        problems.append("PATH does not put the venv first: `billing` and `python` would not be the venv's")
    entrypoints = [arguments for instruction, arguments in final if instruction == "ENTRYPOINT"]
    if not entrypoints or not entrypoints[-1].startswith('["/app/.venv/bin/billing"'):
        problems.append("ENTRYPOINT is not the venv's billing (exec form)")
    return problems


DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_dockerfile_is_multi_stage_locked_and_non_root() -> None:
    assert dockerfile_violations(DOCKERFILE) == []


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("USER 10001:10001", "USER root", "numeric non-root"),
        ("USER 10001:10001", "USER billing", "numeric non-root"),
        ("USER 10001:10001", "", "unset"),
        (
            "uv sync --frozen --no-dev --no-install-package",
            "uv sync --no-dev --no-install-package",
            "--frozen",
        ),
        ("--no-dev --no-install-package", "--no-install-package", "development"),
        ("FROM python:3.11-slim AS runtime", "FROM python:3.12-slim AS runtime", "python:3.11-slim"),
        ("WORKDIR /app\n# Owned", "RUN apt-get install -y gcc\nWORKDIR /app\n# Owned", "installs or builds"),
        ("ENV PATH=/app/.venv/bin:$PATH", "ENV PATH=$PATH:/app/.venv/bin", "PATH"),
    ],
)
def test_dockerfile_check_catches_a_weakened_image(old: str, new: str, complaint: str) -> None:
    assert old in DOCKERFILE
    problems = dockerfile_violations(DOCKERFILE.replace(old, new))
    assert any(complaint in problem for problem in problems), problems


def test_dockerfile_single_stage_is_rejected() -> None:
    single = DOCKERFILE.split("# ---- runtime")[0]
    assert dockerfile_violations(single) == ["not a multi-stage build"]


def _pattern(pattern: str) -> re.Pattern[str]:
    regex = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/")):
        regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(regex)


def docker_context_includes(dockerignore: str, path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for line in dockerignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = _pattern(line.removeprefix("!"))
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            included = negated
    return included


def source_files() -> Iterator[str]:
    for path in (ROOT / "src").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path.relative_to(ROOT).as_posix()


def dockerignore_violations(dockerignore: str) -> list[str]:
    needed = ["pyproject.toml", "uv.lock", "README.md", *source_files()]
    kept_out = [
        ".venv/bin/python",
        ".git/HEAD",
        "var/pgdata/PG_VERSION",
        "tests/conftest.py",
        "src/billing/__pycache__/cli.cpython-311.pyc",
    ]
    problems = [
        f"{path} is left out of the build context"
        for path in needed
        if not docker_context_includes(dockerignore, path)
    ]
    problems += [
        f"{path} is sent to the build context"
        for path in kept_out
        if docker_context_includes(dockerignore, path)
    ]
    return problems


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    dockerignore = (ROOT / ".dockerignore").read_text()
    assert dockerignore_violations(dockerignore) == []
    assert dockerignore_violations(dockerignore.replace("*\n", "", 1)) != [], "the check can fail"
    assert any("uv.lock" in p for p in dockerignore_violations(dockerignore.replace("!uv.lock\n", "")))
