#!/bin/sh
# meshexp postinstall (deb: configure; rpm: $1 = 1 install, 2 upgrade).
set -e
# The proxy's user: uid 2102, as Linkerd's chart and MESHEXP_PROXY_UID.
if ! getent passwd linkerd-proxy >/dev/null; then
  if getent passwd 2102 >/dev/null; then
    echo "meshexp: uid 2102 is taken by $(getent passwd 2102 | cut -d: -f1); create a proxy user yourself and set MESHEXP_PROXY_UID in /etc/meshexp/meshexp.env" >&2
  else
    getent group linkerd-proxy >/dev/null || groupadd --system --gid 2102 linkerd-proxy 2>/dev/null || groupadd --system linkerd-proxy
    useradd --system --uid 2102 --gid linkerd-proxy --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "linkerd2-proxy (meshexp)" linkerd-proxy
  fi
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  # Not enabled or started here: fill in /etc/meshexp/meshexp.env first,
  # then systemctl enable --now meshexp. An upgrade restarts a running one.
  if systemctl is-active --quiet meshexp.service; then
    systemctl try-restart meshexp.service || true
  fi
fi
exit 0
