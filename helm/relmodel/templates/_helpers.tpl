{{/* Names ------------------------------------------------------------------------------------ */}}

{{- define "relmodel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "relmodel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", at most 63 characters. Call with (list $ "suffix"). */}}
{{- define "relmodel.component" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "relmodel.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" -}}
{{- end -}}

{{- define "relmodel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels. Call the component variants with (list $ "component"). ----------------------------- */}}

{{- define "relmodel.labels" -}}
helm.sh/chart: {{ include "relmodel.chart" . }}
app.kubernetes.io/name: {{ include "relmodel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: relmodel
{{- end -}}

{{- define "relmodel.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "relmodel.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "relmodel.componentLabels" -}}
{{ include "relmodel.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Images: (list $ "operator") -> registry/name:tag, or repository:tag when repository is set. --- */}}

{{- define "relmodel.image" -}}
{{- $root := index . 0 -}}
{{- $key := index . 1 -}}
{{- $images := $root.Values.images -}}
{{- $own := index $images $key -}}
{{- $tag := $own.tag | default $images.tag | default $root.Chart.AppVersion -}}
{{- $repo := $own.repository | default (printf "%s/%s" $images.registry (index $images.names $key)) -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* The namespace the operator watches (and where its Role lives) when not cluster-wide. */}}
{{- define "relmodel.watchNamespace" -}}
{{- .Values.watch.namespace | default .Release.Namespace -}}
{{- end -}}

{{- define "relmodel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "relmodel.component" (list . "operator")) -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create=false (the operator's ServiceAccount must already exist)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Storage ------------------------------------------------------------------------------------ */}}

{{- define "relmodel.storageClaim" -}}
{{- if .Values.storage.pvc.existingClaim -}}
{{- .Values.storage.pvc.existingClaim -}}
{{- else if .Values.storage.pvc.create -}}
{{- .Values.storage.pvc.name | default (include "relmodel.component" (list . "storage")) -}}
{{- end -}}
{{- end -}}

{{- define "relmodel.storageVolumes" -}}
{{- $claim := include "relmodel.storageClaim" . -}}
{{- if $claim -}}
- name: storage
  persistentVolumeClaim:
    claimName: {{ $claim }}
{{- end -}}
{{- end -}}

{{/* (list $ readOnly) */}}
{{- define "relmodel.storageMounts" -}}
{{- $root := index . 0 -}}
{{- if include "relmodel.storageClaim" $root -}}
- name: storage
  mountPath: {{ $root.Values.storage.mountPath }}
  {{- if index . 1 }}
  readOnly: true
  {{- end }}
{{- end -}}
{{- end -}}

{{- define "relmodel.storageEnvFrom" -}}
{{- if .Values.storage.objectStore.existingSecret -}}
- secretRef:
    name: {{ .Values.storage.objectStore.existingSecret }}
{{- end -}}
{{- end -}}

{{/* Redis: the broker URL env var, inline or from a Secret. ---------------------------------------- */}}

{{- define "relmodel.redisUrl" -}}
{{- printf "redis://%s:%d/0" (include "relmodel.component" (list . "redis")) (int .Values.redis.port) -}}
{{- end -}}

{{- define "relmodel.brokerEnv" -}}
{{- if .Values.redis.enabled -}}
- name: RELMODEL_BROKER_URL
  value: {{ include "relmodel.redisUrl" . | quote }}
{{- else if .Values.redis.existingSecret -}}
- name: RELMODEL_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else -}}
- name: RELMODEL_BROKER_URL
  value: {{ required "redis.externalUrl (or redis.existingSecret) is required when redis.enabled=false: the workers and the data-run service need a Redis broker" .Values.redis.externalUrl | quote }}
{{- end }}
{{- end -}}

{{/* Writable scratch for read-only root filesystems: /tmp, with HOME and caches under it. */}}
{{- define "relmodel.tmpEnv" -}}
- name: HOME
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: HF_HOME
  value: /tmp/.cache/huggingface
- name: MPLCONFIGDIR
  value: /tmp/.cache/matplotlib
- name: PYTHONUNBUFFERED
  value: "1"
{{- end -}}

{{- define "relmodel.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "relmodel.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* Cross-field checks that a JSON schema cannot word clearly. Included by every template. */}}
{{- define "relmodel.validate" -}}
{{- if and (not .Values.storage.pvc.create) (not .Values.storage.pvc.existingClaim) (not .Values.storage.objectStore.existingSecret) (not .Values.storage.objectStore.uri) -}}
{{- fail "storage: set storage.pvc.create=true, storage.pvc.existingClaim, or storage.objectStore (uri and existingSecret): step outputs need somewhere to live" -}}
{{- end -}}
{{- if and .Values.storage.objectStore.uri (hasPrefix "file:" .Values.storage.objectStore.uri) -}}
{{- fail "storage.objectStore.uri must be an object-store URI (s3://, gs://, az://...); for a volume use storage.pvc" -}}
{{- end -}}
{{- if and .Values.redis.enabled (or .Values.redis.externalUrl .Values.redis.existingSecret) -}}
{{- fail "redis: set either redis.enabled=true (a Redis in the release) or redis.externalUrl / redis.existingSecret (an existing Redis), not both" -}}
{{- end -}}
{{- range $key := list "operator" "worker" "trainer" "engine" "gateway" -}}
{{- $tag := (index $.Values.images $key).tag | default $.Values.images.tag -}}
{{- if eq $tag "latest" -}}
{{- fail (printf "images: the %s image tag is 'latest': pin a version (pods the operator creates carry no imagePullPolicy, so 'latest' re-pulls on every step)" $key) -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.redis.image.tag "latest" -}}
{{- fail "redis.image.tag is 'latest': pin a Redis version" -}}
{{- end -}}
{{- if and .Values.watch.allNamespaces .Values.watch.namespace -}}
{{- fail "watch: watch.namespace and watch.allNamespaces=true exclude each other (the operator watches one namespace or all)" -}}
{{- end -}}
{{- end -}}
