{{- define "switchboard.scheme" -}}
{{ if .Values.joinApi.tls.secretName }}https{{ else }}http{{ end }}
{{- end -}}

{{- define "switchboard.serviceURL" -}}
{{ include "switchboard.scheme" . }}://switchboard-operator.{{ .Release.Namespace }}.svc:8080
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
app.kubernetes.io/name: switchboard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
