#!/usr/bin/env python3
"""Writes charts/eiam-operator/values.schema.json (JSON Schema draft-07) to stdout.

The schema is generated so that every value gets a type, bounds and `additionalProperties: false` without
hand-editing 700 lines of JSON. After changing values.yaml, update this file and run
    hack/gen-values-schema.py > charts/eiam-operator/values.schema.json
tests/helm_chart.rs fails when the committed schema differs from what this prints.
"""
import json
def obj(props, required=None, desc=None, extra=True):
    o = {"type": "object", "additionalProperties": False, "properties": props}
    if required: o["required"] = required
    if desc: o["description"] = desc
    return o
def s(desc=None, **kw):
    o = {"type": "string", **kw}
    if desc: o["description"] = desc
    return o
def b(desc=None):
    o = {"type": "boolean"}
    if desc: o["description"] = desc
    return o
def i(desc=None, **kw):
    o = {"type": "integer", **kw}
    if desc: o["description"] = desc
    return o
def smap(desc=None):
    o = {"type": "object", "additionalProperties": {"type": "string"}}
    if desc: o["description"] = desc
    return o
def anyobj(desc):
    return {"type": "object", "description": desc}
def anyarr(desc, items=None):
    return {"type": "array", "description": desc, "items": items or {"type": "object"}}

DNS1123_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DURATION = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
port = i("A TCP port.", minimum=1, maximum=65535)
probe = obj({
    "initialDelaySeconds": i(minimum=0), "periodSeconds": i(minimum=1), "timeoutSeconds": i(minimum=1),
    "failureThreshold": i(minimum=1), "successThreshold": i(minimum=1),
}, desc="Probe timing; the HTTP path and port are fixed by the chart.")
allowed_apps = {"type": "array", "maxItems": 256, "items": obj({
    "instanceId": s(minLength=1, maxLength=128), "applicationId": s(minLength=1, maxLength=128)},
    required=["instanceId", "applicationId"])}
label_selector = obj({
    "matchLabels": smap(),
    "matchExpressions": {"type": "array", "items": obj({
        "key": s(minLength=1), "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
        "values": {"type": "array", "items": {"type": "string"}}}, required=["key", "operator"])},
})
provider_spec = obj({
    "region": s("Region, e.g. cn-hangzhou.", minLength=1, maxLength=64),
    "endpoint": s("Explicit endpoint URL (https://, or http:// for loopback).", pattern="^https?://"),
    "signatureVersion": {"enum": ["v1", "v3"]},
    "qps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
    "auth": obj({
        "accessKey": obj({"secretRef": obj({
            "name": s(minLength=1), "namespace": s(minLength=1, pattern=DNS1123_LABEL),
            "accessKeyIdKey": s(minLength=1), "accessKeySecretKey": s(minLength=1),
            "securityTokenKey": s(minLength=1)}, required=["name", "namespace"])}, required=["secretRef"]),
        "rrsa": obj({"roleArn": s(minLength=1), "oidcProviderArn": s(minLength=1),
                     "tokenFile": s(minLength=1), "sessionName": s(minLength=2, maxLength=64)},
                    required=["roleArn", "oidcProviderArn"]),
    }, desc="Exactly one of accessKey or rrsa; absent: the operator's own credentials."),
    "allowedApplications": allowed_apps,
    "allowImport": b("Whether spec.secretId may import (read) an existing EIAM secret through it."),
    "allowedNamespaces": obj({"names": {"type": "array", "items": s(pattern=DNS1123_LABEL)},
                              "selector": label_selector}),
}, desc="spec of the ClusterEiamProvider (the API server validates it again against the CRD).")
provider_spec["anyOf"] = [{"required": ["region"]}, {"required": ["endpoint"]}]

schema = {
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "eiam-operator chart values",
  "type": "object", "additionalProperties": False,
  "properties": {
    "global": {"type": "object", "description": "Helm's global values (unused by this chart)."},
    "replicaCount": i("Replicas; more than one needs leaderElection.enabled.", minimum=1, maximum=10),
    "image": obj({
        "repository": s(minLength=1), "tag": s(), "digest": s(pattern="^(sha256:[a-f0-9]{64})?$"),
        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}, required=["repository"]),
    "imagePullSecrets": {"type": "array", "items": obj({"name": s(minLength=1)}, required=["name"])},
    "nameOverride": s(maxLength=63), "fullnameOverride": s(maxLength=63),
    "watchNamespaces": {"type": "array", "uniqueItems": True,
        "description": "Empty: all namespaces. Names: only those namespaces (a Role in each).",
        "items": s(minLength=1, maxLength=63, pattern=DNS1123_LABEL)},
    "crds": obj({"enabled": b("Install and upgrade the CRDs with the release (one release per cluster)."),
                 "keep": b("Keep the CRDs on helm uninstall (helm.sh/resource-policy: keep).")}),
    "rbac": obj({"create": b(), "restartTargets": b(
        "Let the operator patch Deployments/StatefulSets/DaemonSets (spec.rotation.restartTargets).")}),
    "serviceAccount": obj({"create": b(), "name": s(), "annotations": smap(), "labels": smap(),
                           "automountServiceAccountToken": b()}),
    "cloudCredentials": obj({
        "mode": {"enum": ["none", "rrsa", "accessKeySecret"]},
        "rrsa": obj({"roleName": s(maxLength=64), "manual": b(),
                     "roleArn": s(pattern="^(acs:ram::[0-9]+:role/.+)?$"),
                     "oidcProviderArn": s(pattern="^(acs:ram::[0-9]+:oidc-provider/.+)?$"),
                     "tokenAudience": s(minLength=1),
                     "tokenExpirationSeconds": i(minimum=600, maximum=43200),
                     "sessionName": s(minLength=2, maxLength=64, pattern="^[-._@=,a-zA-Z0-9]+$"),
                     "stsRegion": s(maxLength=64), "vpcEndpoint": b()}),
        "accessKeySecret": obj({"name": s(maxLength=253), "accessKeyIdKey": s(minLength=1),
                                "accessKeySecretKey": s(minLength=1), "securityTokenKey": s()}),
    }, required=["mode"]),
    "operator": obj({
        "defaultProvider": obj({"region": s(maxLength=64), "endpoint": s(pattern="^(https?://.+)?$"),
                                "signatureVersion": {"enum": ["v1", "v3"]},
                                "allowedNamespaces": {"type": "array", "uniqueItems": True,
                                    "description": "Namespaces that may use the default provider, or *.",
                                    "items": s(minLength=1, maxLength=63, pattern="^([*]|" + DNS1123_LABEL[1:-1] + ")$")},
                                "allowedApplications": {"type": "array", "uniqueItems": True,
                                    "description": "INSTANCE/APP globs the default provider may serve.",
                                    "items": s(minLength=3, maxLength=257, pattern="^[^/\\s,]+/[^/\\s,]+$")},
                                "allowImport": b("Whether spec.secretId may import through the default provider.")}),
        "namespacedProvidersAmbientCredentials": b(
            "Let EiamProviders without spec.auth.accessKey use the operator's own credentials."),
        "resyncInterval": s("Go duration, e.g. 1h or 30m.", pattern=DURATION),
        "concurrency": i(minimum=1, maximum=1000),
        "defaultQps": {"anyOf": [{"type": "number", "minimum": 0.01, "maximum": 1000},
                                 {"type": "string", "enum": ["auto"]}],
                       "description": "The ceiling on requests per second to EIAM through each provider without "
                                      "spec.qps: auto (only maxQps) or a number."},
        "maxQps": {"type": "number", "minimum": 0.5, "maximum": 1000,
                   "description": "The most requests per second any EIAM account's adaptive budget grows to."},
        "providerMaxConcurrentCalls": i("Concurrent EIAM calls through one provider without spec.maxConcurrentCalls.",
                                        minimum=1, maximum=64),
        "eiamCallTimeout": s("Go duration, 1s..10m: one deadline for each request to EIAM, STS or the metadata service.",
                             pattern=DURATION),
        "logFormat": {"enum": ["json", "text"]},
        "logLevel": s(minLength=1),
        "shutdownTimeout": s("Go duration.", pattern=DURATION),
        "extraEnv": anyarr("Extra EnvVar entries."),
    }),
    "leaderElection": obj({"enabled": b(), "leaseName": s(maxLength=253, pattern="^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"),
                           "leaseDuration": s("Go duration, at least 2s.", pattern=DURATION)}),
    "terminationGracePeriodSeconds": i("Longer than operator.shutdownTimeout.", minimum=1, maximum=3600),
    "metrics": obj({
        "port": port,
        "secure": b("HTTPS and token authentication/authorization on /metrics."),
        "certSecret": s("A Secret with tls.crt and tls.key for /metrics; empty: self-signed.", maxLength=253,
                        pattern="^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"),
        "service": obj({"enabled": b(), "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "annotations": smap()}),
        "serviceMonitor": obj({"enabled": b(), "interval": s(pattern=DURATION),
                               "scrapeTimeout": s(pattern=DURATION), "labels": smap()}),
    }),
    "grafanaDashboard": obj({"enabled": b(), "sidecarLabel": s(minLength=1), "sidecarLabelValue": s(),
                             "namespace": s(maxLength=63, pattern="^(" + DNS1123_LABEL[1:-1] + ")?$"),
                             "extraLabels": smap(), "annotations": smap()}),
    "health": obj({"port": port}),
    "resources": obj({"requests": smap(), "limits": smap(), "claims": anyarr("Resource claims.")},
                     desc="Container resources (ResourceRequirements)."),
    "livenessProbe": probe, "readinessProbe": probe,
    "podSecurityContext": anyobj("PodSecurityContext; keep it within the restricted Pod Security Standard."),
    "securityContext": anyobj("Container SecurityContext; keep it within the restricted Pod Security Standard."),
    "podDisruptionBudget": obj({"enabled": b(), "maxUnavailable": {"type": ["integer", "string"],
                                "pattern": "^[0-9]+%?$", "minimum": 1}}),
    "networkPolicy": obj({"enabled": b(), "metricsFrom": anyarr("NetworkPolicyPeer list."),
                          "apiServerPorts": {"type": "array", "minItems": 1, "items": port},
                          "extraEgress": anyarr("NetworkPolicyEgressRule list.")}),
    "clusterEiamProvider": obj({"create": b(), "name": s(minLength=1, maxLength=253,
                                pattern="^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), "spec": provider_spec}),
    "podAnnotations": smap(), "podLabels": smap(),
    "priorityClassName": s(),
    "nodeSelector": smap(),
    "tolerations": anyarr("Toleration list."),
    "affinity": anyobj("Affinity."),
    "topologySpreadConstraints": anyarr("TopologySpreadConstraint list."),
  },
}
# Every top-level value is required, so removing one from values.yaml is caught too.
schema["required"] = sorted(k for k in schema["properties"] if k != "global")
print(json.dumps(schema, indent=2, ensure_ascii=False))
