#!/usr/bin/env bash
# OCI images without Docker or a registry, for the node mode of tests/k8s/cluster.sh
# (`cluster.sh up --node`): each image is one layer built from host files
# (tests/k8s/images/ocipack.py), written as an OCI archive and imported into the
# instance's containerd (namespace k8s.io), where the kubelet finds it. Pods use it
# with `imagePullPolicy: IfNotPresent` or `Never`.
#
#   tests/k8s/images.sh pause                     the pod sandbox image (static C, cached);
#                                                 `cluster.sh up --node` imports it itself
#   tests/k8s/images.sh binary IMAGE:TAG BINARY [options] [-- ARGS...]
#       pack BINARY (at /usr/local/bin/<name>, the entrypoint) and the shared libraries
#       `ldd` lists for it, the dynamic loader included, so a glibc-linked binary runs in
#       an otherwise empty image. ARGS become the image's default arguments.
#         --user UID[:GID]    user to run as (default 65532:65532, "nonroot")
#         --add HOST[:PATH]   add another host file (or a directory's files), at PATH or at
#                             the same path; its libraries are added too when it is an ELF
#         --out FILE          write the OCI archive to FILE and do not import it
#         --strip             pack a copy without debug symbols (`strip`): debug builds of
#                             Rust binaries shrink several-fold
#   tests/k8s/images.sh import ARCHIVE           import an OCI archive
#   tests/k8s/images.sh list                     the images in the instance's k8s.io namespace
#
# IMAGE without a registry host is normalised as Kubernetes does ("app:1" is
# "docker.io/library/app:1"), so a pod can name it either way.
#
# Options: --name NAME  the cluster.sh instance to import into (default $SYNCMESH_K8S_NAME or
# "default"); it must be up with --node. Archives are cached in
# ${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/images.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER="$HERE/cluster.sh"
PACK="$HERE/images/ocipack.py"
CACHE_ROOT=${SYNCMESH_CACHE:-${HOME:-/root}/.cache/syncmesh}
IMAGES="$CACHE_ROOT/images"
PAUSE_IMAGE=syncmesh.local/pause:1.0   # cluster.sh configures containerd's sandbox image with it

log() { printf '[images.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

NAME=${SYNCMESH_K8S_NAME:-default}
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) [[ $# -ge 2 ]] || die "--name needs a value"; NAME=$2; shift 2 ;;
    --name=*) NAME=${1#--name=}; shift ;;
    -h|--help|help) usage; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[[ ${#ARGS[@]} -gt 0 ]] || { usage >&2; exit 2; }
CMD=${ARGS[0]}; ARGS=("${ARGS[@]:1}")

# normalise REF: the full reference containerd stores (Docker's rules, as the kubelet's CRI uses).
normalise() {
  local ref=$1 first=${1%%/*}
  [[ "$ref" == *:* && "${ref##*/}" == *:* ]] || ref="$ref:latest"
  if [[ "$ref" != */* ]]; then echo "docker.io/library/$ref"
  elif [[ "$first" == *.* || "$first" == *:* || "$first" == localhost ]]; then echo "$ref"
  else echo "docker.io/$ref"; fi
}

ctr_k8s() { "$CLUSTER" --name "$NAME" ctr "$@"; }

import_archive() { # import_archive FILE NAME
  log "importing $2 into containerd of instance '$NAME' (namespace k8s.io)"
  ctr_k8s images import --platform linux/amd64 "$1" >&2 ||
    die "import failed (is instance '$NAME' up with --node?)"
  local listed  # not `ctr ... | grep -q`: grep exits at the first match and ctr dies of SIGPIPE
  listed=$(ctr_k8s images ls -q 2>/dev/null) || die "cannot list the images"
  grep -qxF "$2" <<<"$listed" || die "imported, but $2 is not listed"
}

# libs_of FILE: the shared objects FILE loads (from ldd), the dynamic loader included.
libs_of() {
  local out
  out=$(ldd "$1" 2>&1) || { grep -q "not a dynamic executable" <<<"$out" && return 0; die "ldd $1: $out"; }
  if grep -q "not found" <<<"$out"; then die "ldd $1: missing libraries: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"; fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out" | sort -u
}

cmd_pause() {
  mkdir -p "$IMAGES"
  local src="$HERE/images/pause.c" key bin archive
  key=$( { cat "$src"; gcc --version | head -n1; } | sha256sum | cut -c1-16)
  bin="$IMAGES/pause-$key"
  archive="$IMAGES/pause-$key.oci.tar"
  if [[ ! -x "$bin" ]]; then
    command -v gcc >/dev/null || die "gcc is required for the pause image (apt-get install gcc libc6-dev)"
    gcc -static -O2 -s -Wall -Wextra -o "$bin.tmp" "$src" || die "could not compile $src"
    mv "$bin.tmp" "$bin"
  fi
  if [[ ! -s "$archive" ]]; then
    python3 "$PACK" --name "$PAUSE_IMAGE" --out "$archive" --entrypoint /pause --user 65535:65535 \
      --file "$bin:/pause:0755" >/dev/null
  fi
  if [[ "${1:-}" == --out ]]; then cp "$archive" "$2"; return; fi
  import_archive "$archive" "$PAUSE_IMAGE"
}

cmd_binary() {
  [[ ${#ARGS[@]} -ge 2 ]] || die "usage: images.sh binary IMAGE:TAG BINARY [--user U] [--add HOST[:PATH]] [--out FILE] [-- ARGS...]"
  local ref bin user=65532:65532 out="" name i a files=() args=() adds=() host path f strip=0
  ref=$(normalise "${ARGS[0]}"); bin=$(readlink -f "${ARGS[1]}")
  [[ -x "$bin" && -f "$bin" ]] || die "not an executable file: ${ARGS[1]}"
  i=2
  while (( i < ${#ARGS[@]} )); do
    a=${ARGS[$i]}
    case "$a" in
      --user) user=${ARGS[$((i+1))]}; i=$((i+2)) ;;
      --out) out=${ARGS[$((i+1))]}; i=$((i+2)) ;;
      --add) adds+=("${ARGS[$((i+1))]}"); i=$((i+2)) ;;
      --strip) strip=1; i=$((i+1)) ;;
      --) args=("${ARGS[@]:$((i+1))}"); break ;;
      *) die "unknown option '$a'" ;;
    esac
  done
  [[ "$user" == *:* ]] || user="$user:$user"
  name=$(basename "$bin")
  mkdir -p "$IMAGES"
  if [[ $strip == 1 ]]; then
    STRIPPED="$IMAGES/.strip-$name.$$"
    trap 'rm -f "$STRIPPED"' EXIT
    strip -o "$STRIPPED" "$bin" || die "strip $bin failed"
    files+=(--file "$STRIPPED:/usr/local/bin/$name:0755")
  else
    files+=(--file "$bin:/usr/local/bin/$name:0755")
  fi
  local libs=() l
  mapfile -t libs < <(libs_of "$bin")
  for a in "${adds[@]}"; do
    host=${a%%:*}; path=${a#*:}; [[ "$a" == *:* ]] || path=$host
    if [[ -d "$host" ]]; then
      while IFS= read -r f; do files+=(--file "$f:$path/${f#"$host"/}"); done < <(find "$host" -type f -o -type l | sort)
    else
      [[ -e "$host" ]] || die "--add: no such file: $host"
      files+=(--file "$host:$path")
      if head -c4 "$host" | grep -q ELF; then mapfile -t -O "${#libs[@]}" libs < <(libs_of "$host"); fi
    fi
  done
  # Each library at the path the loader looks for it (symlinks followed, so the file is real).
  while IFS= read -r l; do [[ -n "$l" ]] && files+=(--file "$l:$l"); done < <(printf '%s\n' "${libs[@]}" | sort -u)
  mkdir -p "$IMAGES"
  local archive=${out:-$IMAGES/$(tr '/:' '__' <<<"$ref").oci.tar} digest
  local cmdargs=()
  for a in "${args[@]}"; do cmdargs+=(--arg "$a"); done
  digest=$(python3 "$PACK" --name "$ref" --out "$archive" --entrypoint "/usr/local/bin/$name" --user "$user" \
    --dir /tmp:1777 --dir /etc \
    --text "/etc/passwd=root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
" \
    --text "/etc/group=root:x:0:
nonroot:x:65532:
" \
    --text "/etc/nsswitch.conf=hosts: files dns
" \
    "${files[@]}" "${cmdargs[@]}")
  log "packed $ref ($digest, $(( $(stat -c %s "$archive") / 1024 )) KiB, $(( ${#files[@]} / 2 )) files) -> $archive"
  [[ -n "$out" ]] && return 0
  import_archive "$archive" "$ref"
}

case "$CMD" in
  pause) cmd_pause "${ARGS[@]}" ;;
  binary) cmd_binary ;;
  import) [[ ${#ARGS[@]} -eq 1 ]] || die "usage: images.sh import ARCHIVE"; ctr_k8s images import --platform linux/amd64 "${ARGS[0]}" ;;
  list) ctr_k8s images ls -q 2>/dev/null ;;
  *) die "unknown command '$CMD' (try --help)" ;;
esac
