{{/* Names and labels. Selector labels are name and instance only: they can never change after install. */}}

{{- define "homestation.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "homestation.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "homestation.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "homestation.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "homestation.selectorLabels" -}}
app.kubernetes.io/name: {{ include "homestation.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "homestation.labels" -}}
{{ include "homestation.selectorLabels" . }}
app.kubernetes.io/version: {{ include "homestation.imageTag" . | quote }}
app.kubernetes.io/component: service
app.kubernetes.io/part-of: homestation
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "homestation.serviceAccountName" -}}
{{- default (include "homestation.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "homestation.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* registry/repository:tag, or @digest when one is pinned (what Argo CD image updates write). */}}
{{- define "homestation.image" -}}
{{- $ref := printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $ref .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (include "homestation.imageTag" .) -}}
{{- end -}}
{{- end -}}
