{{- define "apps.labels" -}}
app.kubernetes.io/part-of: homestation
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The second source every Application takes its values files from: this repository, as `$values`. */}}
{{- define "apps.valuesSource" -}}
- repoURL: {{ .Values.repoURL }}
  targetRevision: {{ .Values.targetRevision }}
  ref: values
{{- end -}}

{{- define "apps.syncPolicy" -}}
automated:
  prune: true
  selfHeal: true
syncOptions:
  - CreateNamespace=true
  {{- if .serverSideApply }}
  - ServerSideApply=true
  {{- end }}
retry:
  limit: 5
  backoff:
    duration: 10s
    factor: 2
    maxDuration: 3m
{{- end -}}
