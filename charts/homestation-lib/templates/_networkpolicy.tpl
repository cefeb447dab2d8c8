{{/*
One NetworkPolicy per service selecting its pods with both policy types: whatever is not listed is
denied. Ingress: only from .Values.networkPolicy.ingressFrom (Traefik, Prometheus by default), each to
the ports it names in `to` (http, and grpc when set, by default). http takes a human's identity (from the
proxy): `make charts-check` fails when the tailnet or a peer service is admitted to it.
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
    {{- $to := .to | default (ternary (list "http" "grpc") (list "http") (gt (int $.Values.ports.grpc) 0)) }}
    - from:
        {{- include "homestation.networkPolicyPeer" . | trim | nindent 8 }}
      ports:
        {{- range $to }}
        {{- if not (get $.Values.ports .) }}
        {{- fail (printf "networkPolicy.ingressFrom admits %q, but ports.%s is not set" . .) }}
        {{- end }}
        - port: {{ . }}
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
