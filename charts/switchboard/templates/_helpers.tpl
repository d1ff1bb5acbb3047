{{/* The chart's name (nameOverride replaces it). */}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The operator's namespaced objects (Deployment, Service, ServiceAccount, ...).
Switchboard runs once per cluster (the operator reconciles every Region), so the default
carries no release name; cluster-scoped RBAC keeps the fixed name switchboard-operator. */}}
{{- define "switchboard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-operator" (include "switchboard.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard.scheme" -}}
{{ if .Values.joinApi.tls.secretName }}https{{ else }}http{{ end }}
{{- end -}}

{{- define "switchboard.serviceURL" -}}
{{ include "switchboard.scheme" . }}://{{ include "switchboard.fullname" . }}.{{ .Release.Namespace }}.svc:{{ .Values.service.port }}
{{- end -}}

{{- define "switchboard.reportURL" -}}
https://{{ include "switchboard.fullname" . }}-reports.{{ .Release.Namespace }}.svc:{{ .Values.service.reportPort }}/v1/capacity/reports
{{- end -}}

{{/* Labels that pick the operator's pods: immutable once installed. */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* An image of this chart: include "switchboard.image" (list . "sfu") */}}
{{- define "switchboard.image" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $repository := printf "switchboard/%s" $name -}}
{{- with $root.Values.image.registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}{{ end -}}
{{- $digest := index ($root.Values.image.digest | default dict) $name | default "" -}}
{{- if $digest -}}
{{- printf "%s@%s" $repository $digest -}}
{{- else -}}
{{- printf "%s:%s" $repository ($root.Values.image.tag | default $root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Labels of the chart's own objects that are not the operator (monitors, rules,
dashboard): the same, without the operator component. */}}
{{- define "switchboard.commonLabels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
