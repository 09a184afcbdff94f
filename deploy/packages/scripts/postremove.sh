#!/bin/sh
# meshexp postremove (deb: remove|purge|upgrade…; rpm: $1 = 0 erase, 1 upgrade).
# remove keeps /etc/meshexp (settings, certificates, join token); purge
# deletes it and meshexp's state. The linkerd-proxy user stays (Debian
# practice: files it owned may remain).
set -e
case "$1" in
  purge)
    rm -rf /etc/meshexp /var/lib/meshexp
    ;;
esac
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
