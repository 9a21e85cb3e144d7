{{/* Names shared by the templates. */}}

{{- define "syncmesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "syncmesh.labels" -}}
app.kubernetes.io/name: syncmesh-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "syncmesh.selectorLabels" -}}
app.kubernetes.io/name: syncmesh-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "syncmesh.webhookService" -}}{{ include "syncmesh.fullname" . }}-webhook{{- end -}}
{{- define "syncmesh.webhookSecret" -}}{{ include "syncmesh.fullname" . }}-webhook-tls{{- end -}}
{{- define "syncmesh.webhookConfiguration" -}}{{ include "syncmesh.fullname" . }}-injector{{- end -}}

{{- define "syncmesh.operatorImage" -}}
{{ .Values.operator.image.repository }}:{{ .Values.operator.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "syncmesh.replicaImage" -}}
{{ .Values.replica.image.repository }}:{{ .Values.replica.image.tag | default .Chart.AppVersion }}
{{- end -}}
