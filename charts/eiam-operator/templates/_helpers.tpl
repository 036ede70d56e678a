{{/*
Names, labels and — the one place RBAC is defined — the rules the operator needs.
*/}}

{{- define "eiam-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eiam-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eiam-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eiam-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eiam-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eiam-operator.labels" -}}
helm.sh/chart: {{ include "eiam-operator.chart" . }}
{{ include "eiam-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: eiam-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "eiam-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "eiam-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "eiam-operator.leaseName" -}}
{{- default (include "eiam-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "eiam-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
RBAC rules, in three groups. Every rule is listed once here; rbac.yaml places the groups into a ClusterRole (all
namespaces) or into a Role per watched namespace. The README's RBAC section explains each rule.

"namespaced": what the operator does inside a namespace it watches.
*/}}
{{- define "eiam-operator.rules.namespaced" -}}
# Watch ApplicationClientSecrets, re-read one before acting on it (the watch cache may lag), and patch them to
# add and remove the eiam-operator.io/cleanup finalizer.
- apiGroups: ["eiam-operator.io"]
  resources: ["applicationclientsecrets"]
  verbs: ["get", "list", "watch", "patch"]
# Write status (server-side apply).
- apiGroups: ["eiam-operator.io"]
  resources: ["applicationclientsecrets/status"]
  verbs: ["patch"]
# The Secrets the operator writes carry a controller ownerReference with blockOwnerDeletion; clusters with the
# OwnerReferencesPermissionEnforcement admission plugin require update on the owner's finalizers for that.
- apiGroups: ["eiam-operator.io"]
  resources: ["applicationclientsecrets/finalizers"]
  verbs: ["update"]
# Read namespaced providers (and re-reconcile their users when one changes).
- apiGroups: ["eiam-operator.io"]
  resources: ["eiamproviders"]
  verbs: ["get", "list", "watch"]
# Report whether each provider is usable (its Ready condition; server-side apply).
- apiGroups: ["eiam-operator.io"]
  resources: ["eiamproviders/status"]
  verbs: ["patch"]
# Target Secrets: read, create and update them with server-side apply, drop the ownerReference (Retain), delete
# them (Delete), watch those labelled app.kubernetes.io/managed-by=eiam-operator to repair drift; read the
# AccessKey Secret an EiamProvider references.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- if .Values.rbac.restartTargets }}
# rbac.restartTargets: roll restart targets after a rotation (pod-template annotation, as `kubectl rollout
# restart`). Patching a pod template runs code in the namespace, hence opt-in.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["patch"]
{{- end }}
# Record Events on ApplicationClientSecrets (created, then patched when the same event repeats).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
"cluster": cluster-scoped reads the operator needs in every mode.
*/}}
{{- define "eiam-operator.rules.cluster" -}}
{{- if .Values.metrics.secure }}
# Authenticate and authorize each scrape of /metrics (metrics.secure): TokenReview, SubjectAccessReview.
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end }}
# Read ClusterEiamProviders (and re-reconcile their users when one changes).
- apiGroups: ["eiam-operator.io"]
  resources: ["clustereiamproviders"]
  verbs: ["get", "list", "watch"]
# Read a namespace's labels to evaluate a ClusterEiamProvider's spec.allowedNamespaces.selector.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
# Check at start that the installed CRDs are the ones the operator was built with (their
# eiam-operator.io/schema-hash annotation); it reconciles nothing until they are.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  resourceNames:
    - applicationclientsecrets.eiam-operator.io
    - eiamproviders.eiam-operator.io
    - clustereiamproviders.eiam-operator.io
  verbs: ["get"]
{{- end }}

{{/*
"clusterStatus": only when the operator watches all namespaces — it alone then reports ClusterEiamProviders' Ready
condition (operators confined to namespaces could see a cluster provider differently and would overwrite each other).
*/}}
{{- define "eiam-operator.rules.clusterStatus" -}}
# Report whether each ClusterEiamProvider is usable (its Ready condition; server-side apply).
- apiGroups: ["eiam-operator.io"]
  resources: ["clustereiamproviders/status"]
  verbs: ["patch"]
{{- end }}

{{/*
"leaderElection": the Lease in the release namespace, restricted by name where the verb allows it.
*/}}
{{- define "eiam-operator.rules.leaderElection" -}}
# Create the Lease the replicas compete for (create cannot be limited by resourceNames).
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
# Read, renew, take over and release that one Lease.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "eiam-operator.leaseName" . | quote }}]
  verbs: ["get", "patch"]
{{- end }}

{{/*
"credentials": in namespaced mode, ClusterEiamProviders keep their AccessKey Secret in the release namespace;
the operator reads it there.
*/}}
{{- define "eiam-operator.rules.credentials" -}}
# Read the AccessKey Secret a ClusterEiamProvider references (spec.auth.accessKey.secretRef).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}

{{/*
The pod's ALIBABA_CLOUD_* environment for cloudCredentials.
*/}}
{{- define "eiam-operator.cloudEnv" -}}
{{- $c := .Values.cloudCredentials }}
{{- if eq $c.mode "rrsa" }}
{{- if $c.rrsa.manual }}
- name: ALIBABA_CLOUD_ROLE_ARN
  value: {{ required "cloudCredentials.rrsa.roleArn is required when cloudCredentials.rrsa.manual is true" $c.rrsa.roleArn | quote }}
- name: ALIBABA_CLOUD_OIDC_PROVIDER_ARN
  value: {{ required "cloudCredentials.rrsa.oidcProviderArn is required when cloudCredentials.rrsa.manual is true" $c.rrsa.oidcProviderArn | quote }}
- name: ALIBABA_CLOUD_OIDC_TOKEN_FILE
  value: /var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token
{{- end }}
- name: ALIBABA_CLOUD_ROLE_SESSION_NAME
  value: {{ $c.rrsa.sessionName | quote }}
{{- with $c.rrsa.stsRegion }}
- name: ALIBABA_CLOUD_STS_REGION
  value: {{ . | quote }}
{{- end }}
{{- if $c.rrsa.vpcEndpoint }}
- name: ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED
  value: "true"
{{- end }}
{{- else if eq $c.mode "accessKeySecret" }}
{{- $name := required "cloudCredentials.accessKeySecret.name is required when cloudCredentials.mode is accessKeySecret" $c.accessKeySecret.name }}
- name: ALIBABA_CLOUD_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $name | quote }}
      key: {{ $c.accessKeySecret.accessKeyIdKey | quote }}
- name: ALIBABA_CLOUD_ACCESS_KEY_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $name | quote }}
      key: {{ $c.accessKeySecret.accessKeySecretKey | quote }}
{{- with $c.accessKeySecret.securityTokenKey }}
- name: ALIBABA_CLOUD_SECURITY_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $name | quote }}
      key: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
