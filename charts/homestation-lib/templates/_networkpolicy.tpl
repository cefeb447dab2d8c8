{{/*
One NetworkPolicy per service selecting its pods with both policy types: whatever is not listed is
denied. Ingress: only from .Values.networkPolicy.ingressFrom (Traefik, Prometheus by default).
Egress: only to the peers the chart names in .Values.networkPolicy.needs (DNS always), each a
namespace + pod labels or CIDRs, with its ports.
*/}}
{{- define "homestation.networkPolicyPeer" -}}
{{- if .cidrs }}
{{- range .cidrs }}
- ipBlock:
    cidr: {{ . }}
{{- end }}
{{- else }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  {{- with .podLabels }}
  podSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "homestation.networkPolicy" -}}
{{- if .Values.networkPolicy.enabled -}}
{{- $peers := .Values.networkPolicy.peers -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "homestation.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "homestation.selectorLabels" . | nindent 6 }}
  policyTypes: ["Ingress", "Egress"]
  ingress:
    {{- range .Values.networkPolicy.ingressFrom }}
    - from:
        {{- include "homestation.networkPolicyPeer" . | trim | nindent 8 }}
      ports:
        - port: http
          protocol: TCP
        {{- if $.Values.ports.grpc }}
        - port: grpc
          protocol: TCP
        {{- end }}
    {{- end }}
  egress:
    {{- range (prepend .Values.networkPolicy.needs "dns" | uniq) }}
    {{- $peer := get $peers . }}
    {{- if not $peer }}
    {{- fail (printf "networkPolicy.needs names %q but networkPolicy.peers has no entry for it" .) }}
    {{- end }}
    - to:
        {{- include "homestation.networkPolicyPeer" $peer | trim | nindent 8 }}
      ports:
        {{- range $peer.ports }}
        - port: {{ .port }}
          protocol: {{ .protocol | default "TCP" }}
        {{- end }}
    {{- end }}
{{- end -}}
{{- end -}}
