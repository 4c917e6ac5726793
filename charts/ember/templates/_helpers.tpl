{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "ember.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, unless the release already carries the chart name. */}}
{{- define "ember.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ember.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ember.labels" -}}
helm.sh/chart: {{ include "ember.chart" . }}
{{ include "ember.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ember
{{- end }}

{{- define "ember.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ember.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ember.operatorSelectorLabels" -}}
{{ include "ember.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "ember.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-operator" (include "ember.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ember.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{- define "ember.gatewaySelectorLabels" -}}
{{ include "ember.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* The URL Functions report in status.url: the value given, else the gateway's in-cluster Service. */}}
{{- define "ember.gatewayURL" -}}
{{- if .Values.gateway.url }}
{{- .Values.gateway.url }}
{{- else if .Values.gateway.enabled }}
{{- printf "http://%s-gateway.%s.svc:%v" (include "ember.fullname" .) .Release.Namespace .Values.gateway.service.port }}
{{- end }}
{{- end }}

{{/* The gateway's in-cluster URL, for Ember's own components (the dispatcher
calls through it); unlike ember.gatewayURL it ignores gateway.url, which may
name an ingress the cluster cannot reach. */}}
{{- define "ember.gatewayInternalURL" -}}
{{- printf "http://%s-gateway.%s.svc:%v" (include "ember.fullname" .) .Release.Namespace .Values.gateway.service.port }}
{{- end }}

{{/* Redis: an external one when redis.external.url is set, else the bundled
one when redis.enabled; "true" when either is there. Without the gateway
there is no async API: no bundled Redis then (and no dispatcher). */}}
{{- define "ember.redisExternal" -}}
{{- if .Values.redis.external.url }}true{{ end }}
{{- end }}
{{- define "ember.redisBundled" -}}
{{- if and .Values.gateway.enabled .Values.redis.enabled (not .Values.redis.external.url) }}true{{ end }}
{{- end }}
{{- define "ember.redisAvailable" -}}
{{- if or (include "ember.redisExternal" .) (include "ember.redisBundled" .) }}true{{ end }}
{{- end }}

{{- define "ember.redisSelectorLabels" -}}
{{ include "ember.selectorLabels" . }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "ember.dispatcherSelectorLabels" -}}
{{ include "ember.selectorLabels" . }}
app.kubernetes.io/component: dispatcher
{{- end }}

{{/* The Secret holding the Redis password: the bundled one's generated
Secret, or the external one's existingSecret (none: no password). */}}
{{- define "ember.redisSecretName" -}}
{{- if include "ember.redisExternal" . }}
{{- .Values.redis.external.existingSecret }}
{{- else }}
{{- printf "%s-redis" (include "ember.fullname" .) }}
{{- end }}
{{- end }}
{{- define "ember.redisSecretKey" -}}
{{- if include "ember.redisExternal" . }}
{{- .Values.redis.external.passwordKey }}
{{- else }}password{{- end }}
{{- end }}

{{/* The URL Ember's Redis clients (redis-py) use. With a CA Secret for an
external rediss:// server, the CA file rides in the URL as redis-py's
`ssl_ca_certs` connection argument (the URL's query string is passed to
the connection), so every client verifies the server the same way. */}}
{{- define "ember.redisURL" -}}
{{- if include "ember.redisExternal" . }}
{{- $url := .Values.redis.external.url }}
{{- if .Values.redis.external.caSecret }}
{{- $url = printf "%s%sssl_ca_certs=%s/%s" $url (ternary "&" "?" (contains "?" $url)) (include "ember.redisCAMountPath" .) .Values.redis.external.caKey }}
{{- end }}
{{- $url }}
{{- else }}
{{- printf "redis://%s-redis.%s.svc:%v/0" (include "ember.fullname" .) .Release.Namespace .Values.redis.service.port }}
{{- end }}
{{- end }}

{{- define "ember.redisCAMountPath" -}}/var/run/ember/redis-ca{{- end }}

{{/* Env entries for a client of Redis (gateway, dispatcher), at list indent. */}}
{{- define "ember.redisEnv" -}}
- {name: EMBER_REDIS_URL, value: {{ include "ember.redisURL" . | quote }}}
{{- with (include "ember.redisSecretName" .) }}
- name: EMBER_REDIS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ include "ember.redisSecretKey" $ }}}}
{{- end }}
{{- end }}

{{/* The CA bundle for rediss:// (external Redis with caSecret): mount and volume. */}}
{{- define "ember.redisCAMount" -}}
{{- if and (include "ember.redisExternal" .) .Values.redis.external.caSecret }}
- {name: redis-ca, mountPath: {{ include "ember.redisCAMountPath" . }}, readOnly: true}
{{- end }}
{{- end }}
{{- define "ember.redisCAVolume" -}}
{{- if and (include "ember.redisExternal" .) .Values.redis.external.caSecret }}
- name: redis-ca
  secret:
    secretName: {{ .Values.redis.external.caSecret }}
    defaultMode: 0444
    items:
      - {key: {{ .Values.redis.external.caKey }}, path: {{ .Values.redis.external.caKey }}}
{{- end }}
{{- end }}

{{/* The dispatcher runs when enabled and the gateway it calls through is there. */}}
{{- define "ember.dispatcherEnabled" -}}
{{- if and .Values.dispatcher.enabled .Values.gateway.enabled }}true{{ end }}
{{- end }}

{{/* The bundled Redis image: its tag defaults to the operator's (Ember's
images are built and tagged together), then to the chart's appVersion. */}}
{{- define "ember.redisImage" -}}
{{- $tag := .Values.redis.image.tag | default .Values.operator.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" .Values.redis.image.repository $tag }}
{{- end }}

{{/* The bundled Redis's PersistentVolumeClaim name, or "" for an emptyDir:
- persistence off: emptyDir;
- existingClaim: that claim;
- a storageClass named (or "-", no class): a claim of it;
- else a claim of the cluster's default StorageClass, when it has one. At
  install and upgrade the chart looks: with no default class, a claim would
  stay Pending and Redis with it, so the data goes on an emptyDir (NOTES
  says so). Rendered offline (`helm template`), nothing can be looked up and
  the claim is rendered. */}}
{{- define "ember.redisClaim" -}}
{{- $p := .Values.redis.persistence }}
{{- $claim := printf "%s-redis" (include "ember.fullname" .) }}
{{- if not $p.enabled }}
{{- else if $p.existingClaim }}{{ $p.existingClaim }}
{{- else if $p.storageClass }}{{ $claim }}
{{- else if not (lookup "v1" "Namespace" "" "kube-system") }}{{ $claim }}
{{- else }}
{{- $default := false }}
{{- range (lookup "storage.k8s.io/v1" "StorageClass" "" "").items }}
{{- $a := .metadata.annotations | default dict }}
{{- if or (eq (index $a "storageclass.kubernetes.io/is-default-class" | default "") "true") (eq (index $a "storageclass.beta.kubernetes.io/is-default-class" | default "") "true") }}
{{- $default = true }}
{{- end }}
{{- end }}
{{- if $default }}{{ $claim }}{{ end }}
{{- end }}
{{- end }}
