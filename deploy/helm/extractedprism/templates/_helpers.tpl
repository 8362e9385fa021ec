{{/* The chart's name, and the name of every object: the release name unless overridden. */}}
{{- define "extractedprism.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "extractedprism.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "extractedprism.selectorLabels" -}}
app.kubernetes.io/name: {{ include "extractedprism.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "extractedprism.labels" -}}
{{ include "extractedprism.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "extractedprism.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "extractedprism.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "extractedprism.image" -}}
{{- $repository := required "image.repository is required: the image built from the Containerfile, in a registry the nodes pull from" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The address the health server listens on: --health-bind-address, else --bind-address, else the default. */}}
{{- define "extractedprism.healthBindAddress" -}}
{{- index .Values.flags "health-bind-address" | default (index .Values.flags "bind-address") | default "127.0.0.1" }}
{{- end }}

{{/* Where kubelet sends the probes (it runs on the node): the health address, loopback for a wildcard. */}}
{{- define "extractedprism.probeHost" -}}
{{- $address := include "extractedprism.healthBindAddress" . }}
{{- if eq $address "0.0.0.0" }}127.0.0.1{{ else if eq $address "::" }}::1{{ else }}{{ $address }}{{ end }}
{{- end }}

{{/* The program's arguments: the flags the chart derives from its values, then every non-null entry of flags. */}}
{{- define "extractedprism.args" -}}
- {{ printf "--endpoints=%s" (required "endpoints is required: list the API servers as host:port, e.g. --set endpoints={10.0.0.11:6443,10.0.0.12:6443}" (join "," .Values.endpoints)) | quote }}
- {{ printf "--bind-port=%v" .Values.ports.proxy | quote }}
- {{ printf "--health-port=%v" .Values.ports.health | quote }}
- {{ printf "--enable-discovery=%v" .Values.discovery.enabled | quote }}
{{- if .Values.stateFile.enabled }}
- {{ printf "--state-file=%s/%s" .Values.stateFile.hostPath .Values.stateFile.fileName | quote }}
{{- end }}
{{- range $name, $value := .Values.flags }}
{{- if not (kindIs "invalid" $value) }}
- {{ printf "--%s=%v" $name $value | quote }}
{{- end }}
{{- end }}
{{- end }}
