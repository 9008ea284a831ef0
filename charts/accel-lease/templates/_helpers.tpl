{{/* Names, labels and the image reference shared by every template. */}}

{{- define "accel-lease.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name; cluster-scoped objects carry it too, so releases never collide. */}}
{{- define "accel-lease.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "accel-lease.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "accel-lease.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: accel-lease
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "controller"). */}}
{{- define "accel-lease.selectorLabels" -}}
app.kubernetes.io/name: {{ include "accel-lease.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "accel-lease.componentLabels" -}}
{{ include "accel-lease.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "accel-lease.controllerServiceAccount" -}}
{{- default (printf "%s-controller" (include "accel-lease.fullname" .)) .Values.controller.serviceAccount.name }}
{{- end }}

{{- define "accel-lease.agentServiceAccount" -}}
{{- default (printf "%s-agent" (include "accel-lease.fullname" .)) .Values.agent.serviceAccount.name }}
{{- end }}

{{/* The user name the API server gives a ServiceAccount's token: what the admission policy compares. */}}
{{- define "accel-lease.controllerUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "accel-lease.controllerServiceAccount" .) }}
{{- end }}

{{- define "accel-lease.agentUser" -}}
{{- printf "system:serviceaccount:%s:%s" (include "accel-lease.agentNamespace" .) (include "accel-lease.agentServiceAccount" .) }}
{{- end }}

{{/*
The agent's namespace: its pods need hostPath (and hostPID for the Linux backend), which only the
privileged Pod Security level allows, so they live apart and the release namespace stays restricted.
*/}}
{{- define "accel-lease.agentNamespace" -}}
{{- default (printf "%s-agent" .Release.Namespace) .Values.agent.namespace.name }}
{{- end }}

{{- define "accel-lease.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Pod-level hardening shared by the controller, the agent and the test pod. */}}
{{- define "accel-lease.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "accel-lease.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}
