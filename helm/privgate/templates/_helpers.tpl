{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "privgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, plus the chart name unless the release name holds it.
*/}}
{{- define "privgate.fullname" -}}
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

{{- define "privgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels.
*/}}
{{- define "privgate.labels" -}}
helm.sh/chart: {{ include "privgate.chart" . }}
{{ include "privgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: privgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: never change them in an upgrade (a Deployment's selector is immutable).
*/}}
{{- define "privgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "privgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "privgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "privgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "privgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The Secret holding PRIVGATE_SECRET_KEY: created by the chart, or an existing one.
*/}}
{{- define "privgate.secretKeySecretName" -}}
{{- if .Values.secretKey.create }}
{{- printf "%s-secret-key" (include "privgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "secretKey.existingSecret is required (or set secretKey.create=true and secretKey.value)" .Values.secretKey.existingSecret }}
{{- end }}
{{- end }}

{{/*
The ConfigMap holding the policies: created by the chart from policies.files, or an existing one.
*/}}
{{- define "privgate.policiesConfigMapName" -}}
{{- if .Values.policies.existingConfigMap }}
{{- .Values.policies.existingConfigMap }}
{{- else }}
{{- printf "%s-policies" (include "privgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The number of replicas wanted at the least: the HPA's minimum, or replicaCount.
*/}}
{{- define "privgate.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}
{{- .Values.autoscaling.minReplicas | int }}
{{- else }}
{{- .Values.replicaCount | int }}
{{- end }}
{{- end }}

{{/*
Checks on values that would otherwise render a gateway that cannot start.
*/}}
{{- define "privgate.validate" -}}
{{- if and .Values.secretKey.create (lt (len .Values.secretKey.value) 16) }}
{{- fail "secretKey.value must be at least 16 characters when secretKey.create is true (e.g. openssl rand -hex 32)" }}
{{- end }}
{{- if .Values.policies.enabled }}
{{- if and (not .Values.policies.existingConfigMap) (not .Values.policies.files) }}
{{- fail "policies.enabled needs policies.existingConfigMap or policies.files" }}
{{- end }}
{{- if and (not .Values.policies.existingConfigMap) (not (hasKey .Values.policies.files (printf "%s.yaml" .Values.config.defaultDomain))) }}
{{- fail (printf "policies.files must include %s.yaml: the default domain (config.defaultDomain) must be among the policies" .Values.config.defaultDomain) }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (.Values.autoscaling.minReplicas | int) (.Values.autoscaling.maxReplicas | int)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
