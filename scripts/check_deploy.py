"""Checks on rendered manifests that no schema validator makes (used by scripts/check-deploy).

- ServiceMonitor and PrometheusRule (Prometheus Operator objects, whose schemas are not in the
  Kubernetes ones): their required fields, and every `siemgate_*` metric an alert reads is one
  siemgate exports (a name in src/telemetry/names.rs), so an alert cannot silently never fire.
- Every ConfigMap's siemgate.toml passes `siemgate check`, with the paths it reads moved into a
  temporary directory holding stand-in secrets and a self-signed certificate.
- The pod runs siemgate with the config the ConfigMap mounts, and the termination grace period
  covers shutdown_grace + drain_timeout + flush_timeout.
"""

import os
import shutil
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    print(f"check_deploy: {msg}", file=sys.stderr)
    sys.exit(1)


def exported_metrics():
    text = open(os.path.join(ROOT, "src/telemetry/names.rs")).read()
    names = set(re.findall(r'"(siemgate_[a-z0-9_]+)"', text))
    # Histograms export _bucket/_sum/_count series.
    for n in list(names):
        names |= {n + "_bucket", n + "_sum", n + "_count"}
    return names


def duration_secs(s):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", s)
    if not m:
        fail(f"duration {s!r} not understood")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def check_monitoring(objs, metrics):
    kinds = {o["kind"] for o in objs}
    for k in ("ServiceMonitor", "PrometheusRule"):
        if k not in kinds:
            fail(f"no {k} rendered")
    for o in objs:
        if o["kind"] == "ServiceMonitor":
            spec = o["spec"]
            if not spec.get("selector", {}).get("matchLabels") or not spec.get("endpoints"):
                fail("ServiceMonitor needs spec.selector.matchLabels and spec.endpoints")
            sel = spec["selector"]["matchLabels"]
            ports = [e.get("port") for e in spec["endpoints"]]
            svcs = [s for s in objs if s["kind"] == "Service"
                    and sel.items() <= s["metadata"].get("labels", {}).items()]
            if not svcs:
                fail(f"ServiceMonitor selects no Service: {sel}")
            for s in svcs:
                names = {p.get("name") for p in s["spec"]["ports"]}
                if not set(ports) <= names:
                    fail(f"ServiceMonitor port {ports} not on Service {s['metadata']['name']}")
        if o["kind"] == "PrometheusRule":
            groups = o["spec"]["groups"]
            alerts = [r for g in groups for r in g["rules"]]
            if not alerts:
                fail("PrometheusRule has no rules")
            for r in alerts:
                for key in ("alert", "expr", "labels", "annotations"):
                    if key not in r:
                        fail(f"rule {r.get('alert')} lacks {key}")
                if r["labels"].get("severity") not in ("info", "warning", "critical"):
                    fail(f"rule {r['alert']}: severity label must be info, warning or critical")
                for m in re.findall(r"\bsiemgate_[a-z0-9_]+", r["expr"]):
                    if m not in metrics:
                        fail(f"rule {r['alert']} reads {m}, which siemgate does not export")
            check_rules(groups)


def check_rules(groups):
    """`promtool check rules` on the rule groups (PromQL that parses, templates that render),
    then `promtool test rules` on deploy/kubernetes/tests/alerts.test.yaml: the alerts fire on
    the series they are for, and not before their `for`."""
    here = os.path.dirname(os.path.abspath(__file__))
    cases = os.path.join(here, "..", "deploy", "kubernetes", "tests", "alerts.test.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "rules.yaml"), "w") as f:
            yaml.safe_dump({"groups": groups}, f)
        shutil.copy(cases, os.path.join(tmp, "alerts.test.yaml"))
        for args in (["check", "rules", "rules.yaml"], ["test", "rules", "alerts.test.yaml"]):
            r = subprocess.run(["promtool", *args], cwd=tmp, capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"promtool {' '.join(args)}:\n{r.stdout}{r.stderr}")
    print("alert rules: promtool check and tests OK")


def check_config(objs, binary):
    maps = [o for o in objs if o["kind"] == "ConfigMap" and "siemgate.toml" in o.get("data", {})]
    if not maps:
        fail("no ConfigMap with siemgate.toml")
    for cm in maps:
        text = cm["data"]["siemgate.toml"]
        cfg = tomllib.loads(text)
        sts = [o for o in objs if o["kind"] == "StatefulSet"][0]
        pod = sts["spec"]["template"]["spec"]
        grace = pod["terminationGracePeriodSeconds"]
        need = sum(duration_secs(x) for x in (
            cfg["server"].get("shutdown_grace", "5s"),
            cfg["server"].get("drain_timeout", "10s"),
            cfg["spool"].get("flush_timeout", "10s")))
        if grace <= need:
            fail(f"terminationGracePeriodSeconds {grace} does not cover {need}s of shutdown")
        c = pod["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        vol = [v["name"] for v in pod["volumes"]
               if v.get("configMap", {}).get("name") == cm["metadata"]["name"]]
        if not vol or mounts.get(vol[0], "") + "/siemgate.toml" not in c["args"]:
            fail("the container does not run the config the ConfigMap mounts")
        with tempfile.TemporaryDirectory() as tmp:
            moved = text.replace("/etc/siemgate/", tmp + "/etc/siemgate/")
            moved = moved.replace("/var/lib/siemgate", tmp + "/var/lib/siemgate")
            for path in set(re.findall(re.escape(tmp) + r"/etc/siemgate/[^\"]+", moved)):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if path.endswith("redis-url"):
                    content = "redis://:stand-in-password@siemgate-redis:6379/0\n"
                else:
                    content = "stand-in-secret-0123456789abcdef\n"
                with open(path, "w") as f:
                    f.write(content)
            tls = cfg["server"].get("tls")
            if tls:
                subprocess.run(
                    ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=siemgate",
                     "-keyout", tls["key_file"].replace("/etc/siemgate/", tmp + "/etc/siemgate/"),
                     "-out", tls["cert_file"].replace("/etc/siemgate/", tmp + "/etc/siemgate/")],
                    check=True, capture_output=True)
            path = os.path.join(tmp, "siemgate.toml")
            with open(path, "w") as f:
                f.write(moved)
            r = subprocess.run([binary, "check", "--config", path], capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"siemgate check refused ConfigMap {cm['metadata']['name']}:\n{r.stdout}{r.stderr}")
            if "stand-in-secret" in r.stdout + r.stderr or "stand-in-password" in r.stdout + r.stderr:
                fail("siemgate check printed a secret")
        print(f"siemgate check: ConfigMap {cm['metadata']['name']} OK")


def main():
    binary = sys.argv[1]
    metrics = exported_metrics()
    for f in sys.argv[2:]:
        objs = [o for o in yaml.safe_load_all(open(f)) if o]
        check_monitoring(objs, metrics)
        check_config(objs, binary)
        print(f"{os.path.basename(f)}: monitoring objects and config OK")


if __name__ == "__main__":
    main()
