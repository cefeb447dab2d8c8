{{- define "homestation.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "homestation.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "homestation.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      {{- include "homestation.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "homestation.labels" . | nindent 8 }}
      annotations:
        checksum/config: {{ include "homestation.config" . | sha256sum }}
        {{- with include "homestation.vaultAnnotations" . | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "homestation.serviceAccountName" . }}
      automountServiceAccountToken: {{ or .Values.serviceAccount.kubernetesApi .Values.vault.enabled }}
      enableServiceLinks: false
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      terminationGracePeriodSeconds: {{ add (.Values.config.shutdown_grace_secs | default 10) 5 }}
      containers:
        - name: {{ include "homestation.name" . }}
          image: {{ include "homestation.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          env:
            - name: HOMESTATION_CONFIG_FILE
              value: {{ include "homestation.configFiles" . | quote }}
            - name: HOMESTATION_LOG_FORMAT
              value: json
            - name: OTEL_SERVICE_NAME
              value: {{ include "homestation.name" . | quote }}
            {{- with .Values.telemetry.otlpEndpoint }}
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: {{ . | quote }}
            {{- end }}
            - name: OTEL_RESOURCE_ATTRIBUTES
              value: {{ printf "k8s.namespace.name=%s,deployment.environment=%s" .Release.Namespace .Values.telemetry.environment | quote }}
            {{- with .Values.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ .Values.ports.http }}
              protocol: TCP
            {{- if .Values.ports.grpc }}
            - name: grpc
              containerPort: {{ .Values.ports.grpc }}
              protocol: TCP
            {{- end }}
            {{- if .Values.ports.enrol }}
            - name: enrol
              containerPort: {{ .Values.ports.enrol }}
              protocol: TCP
            {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            privileged: false
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: config
              mountPath: /etc/homestation
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if .Values.secretConfig.existingSecret }}
            - name: secret-config
              mountPath: /etc/homestation-secret
              readOnly: true
            {{- end }}
            {{- with .Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "homestation.fullname" . }}
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.tmpSize }}
        {{- with .Values.secretConfig.existingSecret }}
        - name: secret-config
          secret:
            secretName: {{ . }}
            items:
              - key: config.toml
                path: config.toml
        {{- end }}
        {{- with .Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "homestation.selectorLabels" . | nindent 14 }}
{{- end -}}
