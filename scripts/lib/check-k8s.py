"""Checks of rendered Kubernetes manifests, for scripts/lint-deploy.sh (run with the deploy-tools venv).

  check-k8s.py validate RENDERED.yaml
      Built-in kinds: `kubernetes-validate --strict` against the oldest and newest Kubernetes we
      claim (a kind it has no schema for is an error here: the tool itself only warns and passes).
      KEDA ScaledObjects: deploy/schemas/keda-scaledobject-v1alpha1.json (the tool has no CRDs).
  check-k8s.py policy RENDERED.yaml COMPOSE.json
      What ProStream's manifests promise: settings equal to docker-compose.yml's (COMPOSE.json is its
      resolved form) but the storage ones (S3 here, a shared volume in Compose), UID/GID 1001,
      read-only root, no capabilities, probes, grace periods, no shared volume (MEDIA_ROOT is a
      scratch emptyDir), the KEDA trigger keys. Prints problems; exits 1 if any.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

K8S_VERSIONS = ("1.30.0", "1.37.0")
CRD_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): "deploy/schemas/keda-scaledobject-v1alpha1.json"}
SECRET_KEYS = {"DATABASE_URL", "REDIS_URL", "PLAYBACK_SIGNING_KEYS", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"}
# Compose keeps media on a shared volume (STORAGE_BACKEND=local); Kubernetes pods share no disk and use
# a bucket: these settings may differ from docker-compose.yml's defaults.
STORAGE_KEYS = {"STORAGE_BACKEND", "S3_BUCKET", "S3_ENDPOINT", "S3_REGION", "S3_PATH_STYLE", "S3_PREFIX",
                "S3_PUBLIC_ENDPOINT"}
KEDA_KEYS = {"REDIS_ADDRESS", "REDIS_PASSWORD"}  # read by KEDA's redis scaler, not by the binaries
# Compose generates the playback signing key into a volume and points the API at it; Kubernetes takes
# PLAYBACK_SIGNING_KEYS from the Secret (the operator's own key), so this one is Compose's only.
COMPOSE_ONLY_KEYS = {"PLAYBACK_SIGNING_KEYS_FILE"}


def load(path):
    try:
        return [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
    except yaml.YAMLError as e:
        raise SystemExit(f"ERROR {path}: not YAML: {e}")


def validate(path):
    docs = load(path)
    failed = 0
    core = []
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            print(f"ERROR {path}: a document without apiVersion/kind")
            failed += 1
            continue
        schema_file = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if schema_file is None:
            core.append(doc)
            continue
        schema = json.loads(pathlib.Path(schema_file).read_text())
        name = f"{doc['kind'].lower()}/{doc.get('metadata', {}).get('name')}"
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        for e in errors:
            where = ".".join(str(p) for p in e.path)
            print(f"ERROR {path} did not validate for resource {name} against {schema_file}: {where}: {e.message}")
        failed += bool(errors)
        if not errors:
            print(f"INFO {path} passed for resource {name} against {schema_file}")
    if core:
        tool = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump_all(core, f)
            f.flush()
            args = [tool, "--strict"] + [a for v in K8S_VERSIONS for a in ("-k", v)] + [f.name]
            run = subprocess.run(args, capture_output=True, text=True)
        out = (run.stdout + run.stderr).replace(f.name, path)
        print(out, end="")
        # kubernetes-validate exits 0 for a kind it has no schema for (a typo, an unknown CRD).
        if run.returncode != 0 or "WARN" in out:
            if "Couldn't find schema" in out:
                print(f"ERROR {path}: a kind with no schema (neither built in nor in deploy/schemas/)")
            failed += 1
    return 1 if failed else 0


def policy(path, compose_json):
    docs = load(path)
    compose = json.loads(pathlib.Path(compose_json).read_text())["services"]
    problems = []
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}

    def get(kind, prefix):
        found = [d for (k, n), d in by.items() if k == kind and (n == prefix or n.startswith(prefix + "-"))]
        if not found:
            problems.append(f"no {kind} named {prefix}")
            return {}
        return found[0]

    api, worker = get("Deployment", "prostream-api"), get("Deployment", "prostream-worker")
    config, secret = get("ConfigMap", "prostream-config"), get("Secret", "prostream-secrets")
    service, pdb = get("Service", "prostream-api"), get("PodDisruptionBudget", "prostream-api")
    scaled = get("ScaledObject", "prostream-worker")
    settings = config.get("data", {})

    # The variables the binaries read (clap `env = "..."`), plus RUST_LOG.
    read = {"RUST_LOG"}
    for src in list(pathlib.Path("src").rglob("*.rs")) + list(pathlib.Path("worker/src").rglob("*.rs")):
        read |= set(re.findall(r'env\s*=\s*"([A-Z][A-Z0-9_]*)"', src.read_text()))

    # Settings: the same names and defaults as docker-compose.yml's api and worker services.
    expected = {}
    for svc in ("api", "worker"):
        for key, value in compose.get(svc, {}).get("environment", {}).items():
            if key not in SECRET_KEYS | COMPOSE_ONLY_KEYS:
                expected[key] = "" if value is None else str(value)
    for key in sorted(set(expected) | set(settings)):
        if key not in settings:
            problems.append(f"ConfigMap: {key} is missing (docker-compose.yml sets it)")
        elif key not in expected:
            problems.append(f"ConfigMap: {key} is not in docker-compose.yml")
        elif settings[key] != expected[key] and key not in STORAGE_KEYS:
            problems.append(f"ConfigMap: {key}={settings[key]!r}, docker-compose.yml says {expected[key]!r}")
        if key not in read:
            problems.append(f"ConfigMap: {key} is read by neither binary (typo?)")
    stored = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for key in sorted(SECRET_KEYS | KEDA_KEYS):
        if key not in stored:
            problems.append(f"Secret: {key} is missing")
    for key in sorted(stored - SECRET_KEYS - KEDA_KEYS):
        problems.append(f"Secret: {key} is neither read by the binaries nor by KEDA")
    media_root = settings.get("MEDIA_ROOT", "")
    if settings.get("STORAGE_BACKEND") != "s3":
        problems.append("ConfigMap: STORAGE_BACKEND is not s3 (pods on different nodes share no disk)")
    if not settings.get("S3_BUCKET"):
        problems.append("ConfigMap: S3_BUCKET is empty")
    for (kind, name) in by:
        if kind == "PersistentVolumeClaim":
            problems.append(f"PersistentVolumeClaim {name}: media lives in the bucket; pods share no volume")

    def pod_checks(name, dep):
        spec = dep.get("spec", {}).get("template", {}).get("spec", {})
        psc = spec.get("securityContext", {})
        if not psc.get("runAsNonRoot") or psc.get("runAsUser") != 1001 or psc.get("runAsGroup") != 1001:
            problems.append(f"{name}: the pod does not run as non-root UID/GID 1001")
        if psc.get("fsGroup") != 1001:
            problems.append(f"{name}: fsGroup is not 1001 (the media volume would not be writable)")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: mounts a service account token it never uses")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            cname = f"{name}/{c.get('name')}"
            sc = c.get("securityContext", {})
            if sc.get("runAsUser", 1001) != 1001 or sc.get("runAsNonRoot") is False:
                problems.append(f"{cname}: runs as another user than 1001")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cname}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cname}: the root filesystem is not read-only")
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
                problems.append(f"{cname}: capabilities are not dropped (drop: [ALL], no add)")
            if "command" in c:
                problems.append(f"{cname}: sets command, which replaces the image's tini entrypoint (use args)")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in res.get(kind, {}):
                        problems.append(f"{cname}: no {what} {kind}")
            env_from = {next(iter(e.values()))["name"].split("-")[1] for e in c.get("envFrom", [])}
            if {"config", "secrets"} - env_from:
                problems.append(f"{cname}: does not take its environment from the ConfigMap and the Secret")
        main = (spec.get("containers") or [{}])[0]
        mounts = {m["mountPath"]: m["name"] for m in main.get("volumeMounts", [])}
        media = volumes.get(mounts.get(media_root, ""), {})
        if "emptyDir" not in media or not media["emptyDir"].get("sizeLimit"):
            problems.append(f"{name}: MEDIA_ROOT ({media_root}) is not a scratch emptyDir with a sizeLimit")
        if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
            problems.append(f"{name}: no writable /tmp (emptyDir) beside the read-only root")
        return spec, main

    spec, main = pod_checks("api", api)
    if spec:
        inits = " ".join(" ".join(c.get("args", [])) for c in spec.get("initContainers", []))
        if "prostream migrate" not in inits:
            problems.append("api: no initContainer runs `prostream migrate`")
        if main.get("args") != ["prostream", "serve"]:
            problems.append("api: the container does not run `prostream serve`")
        if main.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            problems.append("api: readiness is not GET /readyz")
        if main.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            problems.append("api: liveness is not GET /healthz")
        if "startupProbe" not in main:
            problems.append("api: no startup probe")
        if spec.get("terminationGracePeriodSeconds", 30) <= 30:
            problems.append("api: terminationGracePeriodSeconds leaves no room past SHUTDOWN_GRACE_SECS (30 s)")
    labels = api.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    if service and (not service["spec"].get("selector") or not service["spec"]["selector"].items() <= labels.items()):
        problems.append("Service prostream-api does not select the API pods")
    sel = pdb.get("spec", {}).get("selector", {}).get("matchLabels", {})
    if pdb and (not sel or not sel.items() <= labels.items()):
        problems.append("PodDisruptionBudget prostream-api does not select the API pods")
    if pdb and not (pdb["spec"].get("minAvailable", 0) or pdb["spec"].get("maxUnavailable") is not None):
        problems.append("PodDisruptionBudget prostream-api protects nothing")

    spec, main = pod_checks("worker", worker)
    if spec:
        if main.get("args") != ["prostream-worker"]:
            problems.append("worker: the container does not run `prostream-worker`")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if main.get(probe, {}).get("exec", {}).get("command") != ["prostream-worker", "healthcheck"]:
                problems.append(f"worker: {probe} is not `prostream-worker healthcheck`")
        grace = compose.get("worker", {}).get("stop_grace_period", "30s")
        grace_s = int(re.match(r"(\d+)s$", grace).group(1)) if re.match(r"(\d+)s$", grace) else 30
        if spec.get("terminationGracePeriodSeconds", 30) < grace_s:
            problems.append(f"worker: terminationGracePeriodSeconds is below Compose's stop_grace_period ({grace})")


    so = scaled.get("spec", {})
    if scaled:
        ref = so.get("scaleTargetRef", {})
        if ref.get("kind", "Deployment") != "Deployment" or ref.get("name") != worker.get("metadata", {}).get("name"):
            problems.append("ScaledObject: does not scale the worker Deployment")
        if so.get("minReplicaCount", 0) < 1:
            problems.append("ScaledObject: minReplicaCount < 1 (workers run the reaper, reconciler and sweeper)")
        queue = settings.get("QUEUE_NAME", "")
        lists = {t.get("metadata", {}).get("listName") for t in so.get("triggers", []) if t.get("type") == "redis"}
        want = {f"{queue}:scheduled", f"{queue}:active"}
        if lists != want:
            problems.append(f"ScaledObject: redis triggers watch {sorted(lists)}, not apalis-redis' waiting keys {sorted(want)}")
        names = [t.get("name", "") for t in so.get("triggers", [])]
        formula = so.get("advanced", {}).get("scalingModifiers", {}).get("formula", "")
        if not all(n and re.search(rf"\b{n}\b", formula) for n in names):
            problems.append("ScaledObject: the scalingModifiers formula does not add every trigger")
        for t in so.get("triggers", []):
            for key in ("addressFromEnv", "passwordFromEnv"):
                var = t.get("metadata", {}).get(key)
                if var and var not in stored:
                    problems.append(f"ScaledObject: {key} {var} is not a key of the Secret the worker reads")

    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "validate":
        sys.exit(validate(sys.argv[2]))
    if len(sys.argv) == 4 and sys.argv[1] == "policy":
        sys.exit(policy(sys.argv[2], sys.argv[3]))
    raise SystemExit(__doc__)
