#!/bin/sh
# meshexp preremove (deb: remove|upgrade|deconfigure; rpm: $1 = 0 erase, 1 upgrade).
# Stop the service before its binary goes away: meshexp tears down its
# rules and children on SIGTERM.
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now meshexp.service >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
