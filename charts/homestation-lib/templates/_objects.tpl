{{- define "homestation.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "homestation.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "homestation.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.ports.http }}
      targetPort: http
      protocol: TCP
    {{- if .Values.ports.grpc }}
    - name: grpc
      port: {{ .Values.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
    {{- end }}
    {{- if .Values.ports.enrol }}
    - name: enrol
      port: {{ .Values.ports.enrol }}
      targetPort: enrol
      protocol: TCP
    {{- end }}
{{- end -}}

{{/* The tailnet's one door: the Tailscale operator exposes this Service (the enrol port, nothing else)
on the tailnet; its proxies in the tailscale namespace are what the NetworkPolicy admits to that port. */}}
{{- define "homestation.tailnetService" -}}
{{- if .Values.tailnet.enabled -}}
{{- if not .Values.ports.enrol -}}
{{- fail "tailnet.enabled needs ports.enrol: the tailnet reaches a machine port only, never http" -}}
{{- end -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "homestation.fullname" . }}-tailnet
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
  annotations:
    tailscale.com/hostname: {{ .Values.tailnet.hostname | default (include "homestation.fullname" .) | quote }}
    tailscale.com/tags: {{ .Values.tailnet.tags | quote }}
spec:
  type: LoadBalancer
  loadBalancerClass: tailscale
  selector:
    {{- include "homestation.selectorLabels" . | nindent 4 }}
  ports:
    - name: enrol
      port: {{ .Values.ports.enrol }}
      targetPort: enrol
      protocol: TCP
{{- end -}}
{{- end -}}

{{- define "homestation.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "homestation.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
automountServiceAccountToken: false
{{- end -}}
{{- end -}}

{{- define "homestation.serviceMonitor" -}}
{{- if .Values.serviceMonitor.enabled -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "homestation.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
    {{- with .Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "homestation.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      interval: {{ .Values.serviceMonitor.interval }}
      scrapeTimeout: {{ .Values.serviceMonitor.scrapeTimeout }}
      # job="homestation-<service>": what dashboards/rules and the dashboards select on.
      relabelings:
        - targetLabel: job
          replacement: homestation-{{ include "homestation.fullname" . }}
{{- end -}}
{{- end -}}

{{- define "homestation.podDisruptionBudget" -}}
{{- if and .Values.podDisruptionBudget.enabled (gt (int .Values.replicaCount) 1) -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "homestation.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "homestation.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}
