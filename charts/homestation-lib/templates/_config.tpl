{{/*
The service's configuration, two files merged in order by service-kit (HOMESTATION_CONFIG_FILE):
  /etc/homestation/config.json  from this ConfigMap: .Values.config plus what the chart decides
                                (listen address and ports), never a secret;
  /vault/secrets/config.toml    rendered by Vault Agent from .Values.vault.template, the secrets;
  /etc/homestation-secret/…     or, without Vault, the key config.toml of .Values.secretConfig.existingSecret.
*/}}

{{- define "homestation.config" -}}
{{- $ports := dict "http" (dict "host" "0.0.0.0" "port" .Values.ports.http) -}}
{{- if .Values.ports.grpc -}}
{{- $_ := set $ports "grpc" (dict "host" "0.0.0.0" "port" .Values.ports.grpc) -}}
{{- end -}}
{{- if .Values.ports.enrol -}}
{{- $_ := set $ports "enrol" (dict "host" "0.0.0.0" "port" .Values.ports.enrol) -}}
{{- end -}}
{{- mergeOverwrite (deepCopy .Values.config) $ports | toPrettyJson -}}
{{- end -}}

{{/* HOMESTATION_CONFIG_FILE: the ConfigMap, then the secrets (Vault Agent's file, or a Secret made outside Git). */}}
{{- define "homestation.configFiles" -}}
{{- $files := list "/etc/homestation/config.json" -}}
{{- if .Values.vault.enabled -}}
{{- $files = append $files "/vault/secrets/config.toml" -}}
{{- end -}}
{{- if .Values.secretConfig.existingSecret -}}
{{- $files = append $files "/etc/homestation-secret/config.toml" -}}
{{- end -}}
{{- join ":" $files -}}
{{- end -}}

{{- define "homestation.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "homestation.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
data:
  config.json: |
    {{- include "homestation.config" . | nindent 4 }}
{{- end -}}

{{/* The Vault Agent template: the service's own Vault token and the proxy's proof (the SHA-256 of what
Traefik adds to requests that passed Authelia: forwarded identity is trusted with it only) first, as
top-level keys before any table; then the chart's. */}}
{{- define "homestation.vaultTemplate" -}}
{{- if .Values.vault.tokenInConfig -}}
vault.token = {{ "{{" }} with secret "auth/token/lookup-self" {{ "}}" }}{{ "{{" }} .Data.id | toJSON {{ "}}" }}{{ "{{" }} end {{ "}}" }}
{{ end -}}
auth.proxy_proof_sha256 = {{ "{{" }} with secret "secret/data/homestation/proxy-digest" {{ "}}" }}{{ "{{" }} .Data.data.proof_sha256 | toJSON {{ "}}" }}{{ "{{" }} end {{ "}}" }}

{{- .Values.vault.template -}}
{{- end -}}

{{- define "homestation.vaultAnnotations" -}}
{{- if .Values.vault.enabled }}
vault.hashicorp.com/agent-inject: "true"
vault.hashicorp.com/role: {{ .Values.vault.role | default (include "homestation.name" .) | quote }}
vault.hashicorp.com/agent-pre-populate: "true"
vault.hashicorp.com/agent-inject-secret-config.toml: {{ .Values.vault.secretPath | quote }}
vault.hashicorp.com/agent-inject-template-config.toml: |
  {{- include "homestation.vaultTemplate" . | nindent 2 }}
{{- range $file, $template := .Values.vault.files }}
vault.hashicorp.com/agent-inject-secret-{{ $file }}: {{ $.Values.vault.secretPath | quote }}
vault.hashicorp.com/agent-inject-template-{{ $file }}: |
  {{- $template | nindent 2 }}
{{- end }}
vault.hashicorp.com/agent-run-as-user: "65532"
vault.hashicorp.com/agent-run-as-group: "65532"
vault.hashicorp.com/agent-set-security-context: "true"
vault.hashicorp.com/agent-requests-cpu: "10m"
vault.hashicorp.com/agent-requests-mem: "32Mi"
vault.hashicorp.com/agent-limits-mem: "64Mi"
{{- end }}
{{- end -}}
