{{- define "switchboard.scheme" -}}
{{ if .Values.joinApi.tls.secretName }}https{{ else }}http{{ end }}
{{- end -}}

{{- define "switchboard.serviceURL" -}}
{{ include "switchboard.scheme" . }}://switchboard-operator.{{ .Release.Namespace }}.svc:8080
{{- end -}}

{{- define "switchboard.labels" -}}
app.kubernetes.io/name: switchboard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
