{{/*
Outside access goes through Traefik and Authelia: the IngressRoute always carries the forward-auth
middleware (Authelia decides, 2FA for every outside route; the service maps Remote-User/Remote-Groups
to Admin/Developer/Viewer). Homepage discovers the route from its annotations.
*/}}
{{- define "homestation.route" -}}
{{- if .Values.ingress.enabled -}}
{{- $auth := .Values.ingress.authelia -}}
{{- $_ := required "ingress.host: the route's hostname, when ingress.enabled (the lab's: argocd/services/<name>.yaml, make lab)" .Values.ingress.host -}}
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: {{ include "homestation.fullname" . }}-authelia
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
spec:
  forwardAuth:
    address: {{ $auth.address | quote }}
    trustForwardHeader: true
    authResponseHeaders:
      - Remote-User
      - Remote-Groups
      - Remote-Email
      - Remote-Name
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: {{ include "homestation.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
  {{- if .Values.homepage.enabled }}
  annotations:
    gethomepage.dev/enabled: "true"
    gethomepage.dev/name: {{ .Values.homepage.name | default (include "homestation.name" .) | quote }}
    gethomepage.dev/group: {{ .Values.homepage.group | quote }}
    gethomepage.dev/icon: {{ .Values.homepage.icon | quote }}
    gethomepage.dev/description: {{ .Values.homepage.description | quote }}
    gethomepage.dev/href: {{ printf "https://%s" .Values.ingress.host | quote }}
    gethomepage.dev/pod-selector: {{ printf "app.kubernetes.io/name=%s,app.kubernetes.io/instance=%s" (include "homestation.name" .) .Release.Name | quote }}
  {{- end }}
spec:
  entryPoints:
    - websecure
  routes:
    - kind: Rule
      match: {{ printf "Host(`%s`)" .Values.ingress.host | quote }}
      middlewares:
        - name: {{ include "homestation.fullname" . }}-authelia
      services:
        - name: {{ include "homestation.fullname" . }}
          port: http
    {{- range .Values.ingress.publicPaths }}
    - kind: Rule
      match: {{ printf "Host(`%s`) && PathPrefix(`%s`)" $.Values.ingress.host . | quote }}
      priority: 100
      services:
        - name: {{ include "homestation.fullname" $ }}
          port: http
    {{- end }}
  tls:
    secretName: {{ .Values.ingress.tlsSecretName | default (printf "%s-tls" (include "homestation.fullname" .)) }}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ include "homestation.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
spec:
  secretName: {{ .Values.ingress.tlsSecretName | default (printf "%s-tls" (include "homestation.fullname" .)) }}
  dnsNames:
    - {{ .Values.ingress.host }}
  issuerRef:
    kind: ClusterIssuer
    name: {{ .Values.ingress.clusterIssuer }}
{{- end -}}
{{- end -}}

