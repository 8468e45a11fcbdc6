{{/* Chart name, overridable with nameOverride. */}}
{{- define "rapport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object name: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart>". Object names add a
suffix, so the prefix is kept to 40 characters.
*/}}
{{- define "rapport.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "rapport.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "rapport.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rapport
{{- end -}}

{{/* Labels that select the manager's pods (immutable once installed). */}}
{{- define "rapport.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rapport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end -}}

{{/* The manager's ServiceAccount. */}}
{{- define "rapport.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-controller-manager" (include "rapport.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The manager image: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "rapport.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Mount path of the collector's TLS Secret. */}}
{{- define "rapport.collectorTLSDir" -}}
/etc/rapport/collector-tls
{{- end -}}

{{/* Mount path of the metrics endpoint's certificate. */}}
{{- define "rapport.metricsTLSDir" -}}
/etc/rapport/metrics-tls
{{- end -}}

{{/*
The Secret with the metrics endpoint's certificate: metrics.tls.secretName,
else "<fullname>-metrics-cert" when cert-manager issues it, else empty (the
manager serves a self-signed certificate).
*/}}
{{- define "rapport.metricsTLSSecret" -}}
{{- if and .Values.metrics.enabled .Values.metrics.secure -}}
{{- if .Values.metrics.tls.secretName -}}
{{- .Values.metrics.tls.secretName -}}
{{- else if .Values.metrics.tls.certManager.enabled -}}
{{- printf "%s-metrics-cert" (include "rapport.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* DNS name of the metrics Service, which its certificate names. */}}
{{- define "rapport.metricsServiceDNS" -}}
{{- printf "%s-controller-manager-metrics-service.%s.svc" (include "rapport.fullname" .) .Release.Namespace -}}
{{- end -}}
