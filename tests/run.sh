#!/bin/sh
# The test suite on a fresh Debian/Ubuntu machine, as root: installs what it needs, then runs every test.
#   sudo tests/run.sh            # everything (unit + integration on lab machines)
#   sudo tests/run.sh -k ping    # extra arguments go to pytest
#
# The cluster binaries are built from their Go modules (Go 1.26 at /usr/local/go or on PATH; the module
# proxy must be reachable): about 25 minutes the first time on 2 cores, cached per module, version and
# Go version afterwards (/var/cache/kbuild/test-mirror, and Go's own caches).
set -eu
cd "$(dirname "$0")/.."
PATH="$PATH:/usr/local/go/bin"
export PATH

need_apt=""
for tool in systemd-nspawn:systemd-container debootstrap:debootstrap ip:iproute2 iptables:iptables ssh:openssh-client \
            gcc:gcc strip:binutils make:make bzip2:bzip2 dpkg-source:dpkg-dev gpgv:gpgv strace:strace; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt="$need_apt ${tool#*:}"
done
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt="$need_apt python3-venv"
# runc is built with seccomp support (cgo, linked statically): Debian's libseccomp headers and archive.
[ -f /usr/include/seccomp.h ] || need_apt="$need_apt libseccomp-dev"
# The pause image and busybox are compiled static: glibc's static archive.
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need_apt="$need_apt libc6-dev"
# busybox is built from Debian's source package, verified through the archive's signed InRelease.
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need_apt="$need_apt debian-archive-keyring"
if [ -n "$need_apt" ]; then
    echo "==> apt-get install$need_apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_apt >/dev/null
fi
# `vagrant validate` checks the Vagrantfile (tests/unit/test_inventories.py); that needs no hypervisor.
# Without recommends: they would pull in libguestfs and hundreds of packages.
if ! dpkg -s vagrant vagrant-libvirt >/dev/null 2>&1; then
    echo "==> apt-get install --no-install-recommends vagrant vagrant-libvirt"
    [ -n "$need_apt" ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends vagrant vagrant-libvirt >/dev/null
fi
command -v go >/dev/null 2>&1 || { echo "Go is not installed: put Go 1.26 or newer at /usr/local/go" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
    echo "==> python3 -m venv .venv"
    python3 -m venv .venv
fi
echo "==> pip install -e .[test]"
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

# The slow part first, in the background: every cluster binary and image built from source (cached).
echo "==> building the test artifact mirror (cached; log: .mirror-build.log)"
.venv/bin/python -m tests.mirror build > .mirror-build.log 2>&1 &
mirror_build=$!

# pyinfra (benchmarked against kbuild, smoke-tested here) pins paramiko below 5: it lives in a venv of
# its own so kbuild is tested with the paramiko its users get.
if [ ! -x .venv-bench/bin/pyinfra ]; then
    echo "==> python3 -m venv .venv-bench && pip install pyinfra"
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -q --disable-pip-version-check 'pyinfra>=3.10,<4'
fi
export KBUILD_BENCH_TOOLS="$PWD/.venv-bench/bin"

echo "==> building the lab image (cached)"
.venv/bin/kbuild lab image
if ! wait "$mirror_build"; then
    tail -n 30 .mirror-build.log >&2
    echo "the test mirror could not be built (full log: .mirror-build.log)" >&2
    exit 1
fi
tail -n 1 .mirror-build.log

# The lab-backed tests must run here, never silently skip.
export KBUILD_REQUIRE_LAB=1
export KBUILD_REQUIRE_VAGRANT=1  # and so must the Vagrantfile checks (vagrant, ruby)
echo "==> pytest"
set +e
.venv/bin/pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: the suite is broken or the arguments select nothing" >&2
    exit 1
fi
exit "$rc"
