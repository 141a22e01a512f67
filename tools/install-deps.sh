#!/usr/bin/env bash
# Installs the Debian packages DBFS needs to build and test; idempotent.
# Prints one line: "all dependencies present" or "installed: <packages>".
# Works as root on a fresh Debian 12 (no package lists yet); as another user
# it uses sudo, and only when something is missing.
#
# --cluster also installs what cluster mode needs (docs/cluster.md): etcd and
# its protos with gRPC C++ and protobuf for the generated client, and Ceph's
# monitor, OSD and librados for the data pool. Without it nothing
# cluster-related is installed, and the build leaves cluster support out.
set -euo pipefail

cluster=0
for arg in "$@"; do
  case "$arg" in
    --cluster) cluster=1 ;;
    -h|--help)
      echo "usage: $0 [--cluster]"
      exit 0 ;;
    *)
      echo "install-deps: unknown argument '$arg' (usage: $0 [--cluster])" >&2
      exit 2 ;;
  esac
done

packages=(
  build-essential cmake pkg-config g++ make
  # libfuse is vendored (third_party/libfuse); fuse3 gives fusermount3, liburing-dev
  # and libnuma-dev its FUSE-over-io_uring transport.
  fuse3 liburing-dev libnuma-dev
  liblmdb-dev lmdb-utils
  libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev googletest
  attr git sqlite3 tar diffutils procps psmisc util-linux python3 ca-certificates
  # the Debian package (cpack -G DEB: dpkg-shlibdeps, file), man pages, the
  # metrics test's scraper
  dpkg-dev file man-db curl
)
if ((cluster)); then
  packages+=(
    etcd-server etcd-client golang-etcd-server-dev
    libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
    ceph-mon ceph-osd ceph-common librados-dev libradospp-dev
  )
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "all dependencies present"
else
  sudo=()
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "install-deps: missing ${missing[*]}; run this script as root" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  # Quiet on success; the full apt output on failure.
  if ! "${sudo[@]}" apt-get update >"$log" 2>&1 ||
     ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "install-deps: failed to install ${missing[*]}" >&2
    exit 1
  fi
  echo "installed: ${missing[*]}"
fi

# FUSE needs the kernel module's device node (integration tests mount volumes).
if [[ ! -e /dev/fuse ]]; then
  if ((EUID == 0)) && command -v modprobe >/dev/null 2>&1; then
    modprobe fuse >/dev/null 2>&1 || true
  fi
  if [[ ! -e /dev/fuse ]]; then
    echo "install-deps: warning: /dev/fuse is missing; mount tests cannot run" \
         "(load the fuse module, or give the container --device /dev/fuse)" >&2
  fi
fi
