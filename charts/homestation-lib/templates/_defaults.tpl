{{/*
The defaults every service chart starts from; a service chart's values.yaml holds only what is its
own, and values given at install override both (maps merge key by key, lists are replaced).
values.schema.json of each service chart is generated from ../values.schema.json, so the two agree.
*/}}
{{- define "homestation.defaults" -}}
nameOverride: ""
fullnameOverride: ""
replicaCount: 2
image:
  # The lab's Harbor (argocd/services/<name>.yaml, make lab); images are <registry>/homestation/<name>.
  registry: harbor.local
  repository: ""
  tag: ""
  digest: ""
  pullPolicy: IfNotPresent
imagePullSecrets: []
ports:
  http: 8080
  grpc: 0
  enrol: 0
tailnet:
  enabled: false
  hostname: ""
  tags: tag:services
config: {}
env: []
resources:
  requests:
    cpu: 50m
    memory: 64Mi
  limits:
    cpu: "1"
    memory: 256Mi
tmpSize: 64Mi
extraVolumes: []
extraVolumeMounts: []
podAnnotations: {}
nodeSelector: {}
tolerations: []
serviceAccount:
  create: true
  name: ""
  kubernetesApi: false
vault:
  enabled: true
  role: ""
  secretPath: ""
  tokenInConfig: false
  template: ""
  files: {}
secretConfig:
  existingSecret: ""
telemetry:
  otlpEndpoint: http://opentelemetry-collector.observability.svc:4318
  environment: lab
podDisruptionBudget:
  enabled: true
serviceMonitor:
  enabled: true
  interval: 30s
  scrapeTimeout: 10s
  labels:
    release: kube-prometheus-stack
networkPolicy:
  enabled: true
  ingressFrom:
    - namespace: traefik
      podLabels:
        app.kubernetes.io/name: traefik
    - namespace: monitoring
      podLabels:
        app.kubernetes.io/name: prometheus
  needs: []
  peers:
    dns:
      namespace: kube-system
      podLabels:
        k8s-app: kube-dns
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    nats:
      namespace: nats
      podLabels:
        app.kubernetes.io/name: nats
      ports:
        - port: 4222
    postgres:
      namespace: postgres
      podLabels:
        cnpg.io/cluster: postgres
      ports:
        - port: 5432
    vault:
      namespace: vault
      podLabels:
        app.kubernetes.io/name: vault
      ports:
        - port: 8200
    otlp:
      namespace: observability
      podLabels:
        app.kubernetes.io/name: opentelemetry-collector
      ports:
        - port: 4318
    # The in-cluster SeaweedFS S3 gateway; a lab with an outside S3 store replaces it (make lab).
    s3:
      namespace: seaweedfs
      podLabels:
        app.kubernetes.io/name: seaweedfs
      ports:
        - port: 8333
    kubeApi:
      cidrs:
        - 172.16.0.0/12
        - 100.64.0.0/10
      ports:
        - port: 6443
    argocd:
      namespace: argocd
      podLabels:
        app.kubernetes.io/name: argocd-server
      ports:
        - port: 8080
    # inventory's gRPC port (service tokens), never its http port.
    inventoryGrpc:
      namespace: homestation
      podLabels:
        app.kubernetes.io/name: inventory
      ports:
        - port: 8081
ingress:
  enabled: false
  host: ""
  clusterIssuer: homestation-vault
  tlsSecretName: ""
  publicPaths: []
  authelia:
    address: http://authelia.authelia.svc.cluster.local/api/authz/forward-auth
homepage:
  enabled: true
  name: ""
  group: HomeStation
  icon: mdi-server
  description: ""
{{- end -}}

{{/*
Everything a service chart renders from the library, in one include:
  {{ include "homestation.all" . }}
The templates see .Values = the defaults above ← the service chart's values ← the operator's.
*/}}
{{- define "homestation.all" -}}
{{- $ctx := include "homestation.context" . | fromJson -}}
{{- $_ := set $ctx "Chart" .Chart -}}
{{- $_ := set $ctx "Release" .Release -}}
{{- $_ := set $ctx "Capabilities" .Capabilities -}}
{{- $_ := set $ctx "Template" .Template -}}
{{- range $kind := list "serviceAccount" "configmap" "deployment" "service" "tailnetService" "podDisruptionBudget" "networkPolicy" "serviceMonitor" "route" -}}
{{- $doc := include (printf "homestation.%s" $kind) $ctx -}}
{{- if trim $doc }}
---
{{ $doc }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* {"Values": defaults ← chart values ← operator values} as JSON; callers add .Chart, .Release. */}}
{{- define "homestation.context" -}}
{{- $values := mergeOverwrite (fromYaml (include "homestation.defaults" .)) (deepCopy .Values) -}}
{{- if not $values.image.repository -}}
{{- $_ := set $values.image "repository" (printf "homestation/%s" .Chart.Name) -}}
{{- end -}}
{{- toJson (dict "Values" $values) -}}
{{- end -}}

{{/*
The Kubernetes API access a service chart grants its own ServiceAccount, written in the chart as
  {{ include "homestation.rbac" (dict "root" . "clusterRules" $rules "namespaceRules" (dict "argocd" $rules)) }}
clusterRules become a ClusterRole, each namespaceRules entry a Role in that namespace; each is bound
to the service's ServiceAccount and nothing else.
*/}}
{{- define "homestation.rbac" -}}
{{- $ctx := include "homestation.context" .root | fromJson -}}
{{- $_ := set $ctx "Chart" .root.Chart -}}
{{- $_ := set $ctx "Release" .root.Release -}}
{{- $name := include "homestation.fullname" $ctx -}}
{{- $account := include "homestation.serviceAccountName" $ctx -}}
{{- if .clusterRules }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $name }}
  labels:
    {{- include "homestation.labels" $ctx | nindent 4 }}
rules:
  {{- toYaml .clusterRules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "homestation.labels" $ctx | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $account }}
    namespace: {{ .root.Release.Namespace }}
{{- end }}
{{- range $namespace, $rules := .namespaceRules }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ $namespace }}
  labels:
    {{- include "homestation.labels" $ctx | nindent 4 }}
rules:
  {{- toYaml $rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ $namespace }}
  labels:
    {{- include "homestation.labels" $ctx | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $account }}
    namespace: {{ $.root.Release.Namespace }}
{{- end }}
{{- end -}}
